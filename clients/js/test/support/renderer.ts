/**
 * Just enough of React's hooks to run a function component without a React renderer: one
 * component at a time, `useState` re-renders (batched), `useEffect` runs after a render when its
 * dependencies changed and cleans up on unmount. JSX still goes through React's own jsx-runtime,
 * so the output is real React elements, read back as text.
 */

type Effect = { deps: unknown[] | undefined; cleanup: (() => void) | void };

class Host<P> {
  output: unknown = null;
  private states: unknown[] = [];
  private effects: Effect[] = [];
  private pending: (() => void)[] = [];
  private stateIndex = 0;
  private effectIndex = 0;
  private scheduled = false;

  constructor(
    private readonly component: (props: P) => unknown,
    private readonly props: P,
  ) {}

  render(): void {
    active = this as Host<unknown>;
    this.stateIndex = 0;
    this.effectIndex = 0;
    try {
      this.output = this.component(this.props);
    } finally {
      active = undefined;
    }
    this.pending.splice(0).forEach((run) => run());
  }

  unmount(): void {
    this.effects.forEach((effect) => effect.cleanup?.());
  }

  useState<S>(initial: S): [S, (next: S | ((before: S) => S)) => void] {
    const i = this.stateIndex++;
    if (!(i in this.states)) this.states[i] = initial;
    const set = (next: S | ((before: S) => S)) => {
      const before = this.states[i] as S;
      this.states[i] = typeof next === "function" ? (next as (b: S) => S)(before) : next;
      // Batched, as React does: updates made during a render or an effect render once, later.
      if (!this.scheduled) {
        this.scheduled = true;
        queueMicrotask(() => {
          this.scheduled = false;
          this.render();
        });
      }
    };
    return [this.states[i] as S, set];
  }

  useEffect(effect: () => (() => void) | void, deps?: unknown[]): void {
    const i = this.effectIndex++;
    const before = this.effects[i];
    const changed = !before || !deps || !before.deps || deps.some((d, k) => !Object.is(d, before.deps![k]));
    if (!changed) return;
    this.pending.push(() => {
      before?.cleanup?.();
      this.effects[i] = { deps, cleanup: effect() };
    });
  }
}

let active: Host<unknown> | undefined;

function host(): Host<unknown> {
  if (!active) throw new Error("a hook was called outside a render");
  return active;
}

/** The hooks that replace React's own (`vi.mock("react", ...)`). */
export const hooks = {
  useState: <S>(initial: S) => host().useState(initial),
  useEffect: (effect: () => (() => void) | void, deps?: unknown[]) => host().useEffect(effect, deps),
};

/** Renders `component` with `props`; re-renders as its state changes until `unmount()`. */
export function render<P>(component: (props: P) => unknown, props: P): Host<P> {
  const mounted = new Host(component, props);
  mounted.render();
  return mounted;
}

/** The text a React element tree shows, children joined. */
export function textOf(node: unknown): string {
  if (node === null || node === undefined || typeof node === "boolean") return "";
  if (typeof node === "string" || typeof node === "number") return String(node);
  if (Array.isArray(node)) return node.map(textOf).join("");
  const props = (node as { props?: { children?: unknown } }).props;
  return textOf(props?.children);
}

/** The props of the tree's root element. */
export function rootProps(node: unknown): Record<string, unknown> {
  return (node as { props: Record<string, unknown> }).props;
}
