/**
 * Progress on stderr: one line per case, rewritten in place on a terminal, plain appended lines
 * otherwise (CI logs). Updates only happen between measurements, never from a timer, so the display
 * itself does not run on the event loop while something is being timed.
 */
export class Progress {
  readonly #tty = Boolean(process.stderr.isTTY);
  readonly #total: number;
  readonly #started = performance.now();
  #index = 0;
  #case = '';
  #caseStarted = 0;

  constructor(total: number) {
    this.#total = total;
  }

  startCase(title: string): void {
    this.#index++;
    this.#case = title;
    this.#caseStarted = performance.now();
    this.#write(`starting`, false);
  }

  step(label: string): void {
    this.#write(label, false);
  }

  endCase(summary: string): void {
    const seconds = ((performance.now() - this.#caseStarted) / 1000).toFixed(1);
    this.#write(`done in ${seconds}s  ${summary}`, true);
  }

  info(message: string): void {
    if (this.#tty) process.stderr.write('\r\x1b[K');
    process.stderr.write(`${message}\n`);
  }

  #write(label: string, final: boolean): void {
    const total = ((performance.now() - this.#started) / 1000).toFixed(0).padStart(4);
    const line = `[${total}s] (${this.#index}/${this.#total}) ${this.#case}: ${label}`;
    if (this.#tty) {
      const width = process.stderr.columns ?? 120;
      process.stderr.write(`\r\x1b[K${line.slice(0, width - 1)}${final ? '\n' : ''}`);
    } else {
      process.stderr.write(`${line}\n`);
    }
  }
}
