/**
 * Modbus RTU is half-duplex: one request at a time on the bus (Modbus over Serial Line v1.02
 * §2.1, "only one master ... one transaction at a time"). Jobs run one after the other; urgent
 * jobs (device commands) go ahead of polls still waiting, never interrupt the request on the wire.
 * One job is one request, so a command waits for at most one request of a poll, not a whole map.
 */
export class Bus {
  private readonly urgent: (() => void)[] = [];
  private readonly normal: (() => void)[] = [];
  private busy = false;

  run<T>(job: () => Promise<T>, urgent = false): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      (urgent ? this.urgent : this.normal).push(() => {
        // A job that throws synchronously still releases the bus.
        Promise.resolve()
          .then(job)
          .then(resolve, reject)
          .finally(() => {
            this.busy = false;
            this.next();
          });
      });
      this.next();
    });
  }

  /** Jobs waiting for the bus (not counting the one running). */
  get waiting(): number {
    return this.urgent.length + this.normal.length;
  }

  private next(): void {
    if (this.busy) return;
    const job = this.urgent.shift() ?? this.normal.shift();
    if (!job) return;
    this.busy = true;
    job();
  }
}
