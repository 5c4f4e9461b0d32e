// One run at a time of an asynchronous job. Asked while a run is in flight, the job runs once
// more after it (however many times it was asked meanwhile); callers share the run's promise.
export class Coalesced {
  private running: Promise<void> | undefined;
  private again = false;

  /** `more`: whether a run asked for meanwhile should still happen (e.g. not after a stop). */
  constructor(private readonly job: () => Promise<void>, private readonly more: () => boolean = () => true) {}

  run(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.again = false;
        await this.job();
      } while (this.again && this.more());
    })().finally(() => { this.running = undefined; });
    return this.running;
  }

  /** The run in flight, if any. */
  get inFlight(): Promise<void> | undefined {
    return this.running;
  }
}
