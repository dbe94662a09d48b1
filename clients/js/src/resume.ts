/**
 * Where a feed resumes after a reconnection, and the filter that makes it gap-free and
 * duplicate-free.
 *
 * Fanout replays every swarm after the id a viewer names (`Last-Event-ID` on SSE, the
 * `last_event_id` query parameter on WebSocket) from its replay buffer, then live ones. A swarm
 * can still arrive twice (a pod's backlog and a live write racing, a replayed micro-batch), so a
 * swarm whose id is not after the last one delivered is dropped: ids sort in emission order
 * within a stream, as plain strings.
 */
export class ResumePoint {
  constructor(private last: string | undefined = undefined) {}

  /** The id of the last swarm delivered, or the one the feed was told to start after. */
  get lastEventId(): string | undefined {
    return this.last;
  }

  /** Whether the swarm `id` is news; if it is, it becomes the point to resume after. */
  accept(id: string): boolean {
    if (this.last !== undefined && id <= this.last) return false;
    this.last = id;
    return true;
  }
}
