/**
 * React's test conventions for the examples: renders and unmounts go through React's `act`, and
 * while a test waits on a feed the act environment is off, so React schedules the renders the
 * feed's updates cause itself, as React Testing Library's `waitFor` does.
 */
import { until } from "./fakes.js";

declare global {
  var IS_REACT_ACT_ENVIRONMENT: boolean | undefined;
}

globalThis.IS_REACT_ACT_ENVIRONMENT = true;

/** Resolves once `predicate` holds of what React rendered (at most 2 s). */
export async function rendered(predicate: () => boolean): Promise<void> {
  globalThis.IS_REACT_ACT_ENVIRONMENT = false;
  try {
    await until(predicate);
  } finally {
    globalThis.IS_REACT_ACT_ENVIRONMENT = true;
  }
}
