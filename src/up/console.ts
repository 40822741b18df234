/**
 * What `up` tells the person who started it: one human-readable line per event on stdout
 * (`12:03:04 mock-a     ready in 1.2 s: mock-small`), where its summary table goes too. The JSON
 * log on stderr is for machines and stays quiet by default; the services' own JSON logs are in
 * the data directory.
 */
export class UpConsole {
  private width = 8;

  constructor(private readonly write: (text: string) => void = (t) => void process.stdout.write(t)) {}

  /** Aligns the subject column on the longest service name. */
  setNames(names: string[]): void {
    this.width = Math.max(8, ...names.map((n) => n.length));
  }

  /** One event about `subject`; `detail` lines (a failing engine's output) are indented under it. */
  say(subject: string, message: string, detail: string[] = []): void {
    const stamp = clock(new Date());
    const lines = [`${stamp} ${subject.padEnd(this.width)}  ${message}`];
    const indent = ' '.repeat(stamp.length + 1 + this.width + 2);
    for (const d of detail) lines.push(`${indent}| ${d}`);
    this.write(`${lines.join('\n')}\n`);
  }

  /** Text as it is (the table, the hints). */
  print(text: string): void {
    this.write(text);
  }
}

function clock(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}
