/**
 * Serial-lines throughput: one driver on a socat pty pair, JSON lines written by a peer.
 * 1. paced at 115200 baud 8N1 (11,520 bytes/s, what a real UART delivers): readings/s sustained, drops;
 * 2. unpaced (pty as fast as the kernel goes): the driver's ceiling, CPU ms per 1,000 readings.
 * Reference in the same run: ReadlineParser (@serialport/parser-readline) + JSON.parse on the same
 * bytes, i.e. the naive pipeline without framing limits, quality or backpressure.
 * Run: npx tsc -p . && node dist/scripts/bench-serial.js
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ReadlineParser } from '@serialport/parser-readline';
import { SerialPort } from 'serialport';
import { harness, PtyPair, sleep, waitFor } from '../test/integration/drivers-support/harness.js';

const LINE = '{"temperature":21.53,"humidity":45.2,"pressure":1013.25}\n';

async function run(label: string, total: number, bytesPerSec: number | null): Promise<void> {
  const d = mkdtempSync(join(tmpdir(), 'egw-bench-'));
  const pty = new PtyPair(join(d, 'dev'), join(d, 'peer'));
  await pty.start();
  const h = harness(
    `  - type: serial-lines\n    id: bench\n    path: ${pty.dev}\n    baud: 115200\n    buffer_size: 100000\n`,
  );
  await h.manager.start();
  await waitFor(() => h.manager.status()[0]!.connected, 5000, 'open');
  const peer = new SerialPort({ path: pty.peer, baudRate: 115200 });
  await new Promise((r) => peer.once('open', r));
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const chunkLines = bytesPerSec ? Math.max(1, Math.floor(bytesPerSec / 100 / LINE.length)) : 200;
  const chunk = LINE.repeat(chunkLines);
  let sent = 0;
  while (sent < total) {
    const ok = peer.write(chunk);
    sent += chunkLines;
    if (bytesPerSec) await sleep(Math.round((chunk.length / bytesPerSec) * 1000));
    else if (!ok) await new Promise((r) => peer.once('drain', r));
  }
  await waitFor(() => h.readings.length >= sent || undefined, 60000, 'all readings').catch(() => undefined);
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const got = h.readings.length;
  const st = h.manager.status()[0]!;
  console.log(
    `${label.padEnd(34)} ${String(got).padStart(7)} readings in ${(ms / 1000).toFixed(2)} s = ${Math.round(
      (got / ms) * 1000,
    )
      .toString()
      .padStart(
        6,
      )} readings/s; CPU ${(((cpu.user + cpu.system) / 1000 / got) * 1000).toFixed(1)} ms per 1,000 readings (whole process, incl. the writer); dropped ${st.dropped}, errors ${JSON.stringify(st.errors)}`,
  );
  await new Promise<void>((r) => peer.close(() => r()));
  await h.close();
  await pty.kill();
  rmSync(d, { recursive: true, force: true });
}

async function reference(total: number): Promise<void> {
  const d = mkdtempSync(join(tmpdir(), 'egw-bench-'));
  const pty = new PtyPair(join(d, 'dev'), join(d, 'peer'));
  await pty.start();
  const port = new SerialPort({ path: pty.dev, baudRate: 115200 });
  const parser = port.pipe(new ReadlineParser({ delimiter: '\n' }));
  let got = 0;
  parser.on('data', (l: string) => {
    JSON.parse(l);
    got++;
  });
  await new Promise((r) => port.once('open', r));
  const peer = new SerialPort({ path: pty.peer, baudRate: 115200 });
  await new Promise((r) => peer.once('open', r));
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const chunk = LINE.repeat(200);
  for (let sent = 0; sent < total; sent += 200) if (!peer.write(chunk)) await new Promise((r) => peer.once('drain', r));
  await waitFor(() => got >= total || undefined, 60000, 'reference').catch(() => undefined);
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  console.log(
    `${'reference: ReadlineParser+JSON.parse'.padEnd(34)} ${String(got).padStart(7)} lines    in ${(ms / 1000).toFixed(2)} s = ${Math.round(
      (got / ms) * 1000,
    )
      .toString()
      .padStart(6)} lines/s;    CPU ${(((cpu.user + cpu.system) / 1000 / got) * 1000).toFixed(1)} ms per 1,000 lines`,
  );
  await new Promise<void>((r) => peer.close(() => r()));
  await new Promise<void>((r) => port.close(() => r()));
  await pty.kill();
  rmSync(d, { recursive: true, force: true });
}

console.log(
  `line: ${LINE.length} bytes; 115200 baud 8N1 carries at most ${Math.floor(11520 / LINE.length)} such lines/s`,
);
await run('paced at 115200 baud (5 s)', Math.floor((11520 / LINE.length) * 5), 11520);
await run('unpaced (driver ceiling)', 200000, null);
await reference(200000);
process.exit(0);
