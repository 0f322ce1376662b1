import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import { pino } from 'pino';
import { HttpSnapshotSource } from '../../../src/vision/sources/http.js';
import { MqttSource, type FrameMessageProps } from '../../../src/vision/sources/mqtt.js';
import type { Frame } from '../../../src/vision/types.js';

const log = pino({ level: 'silent' });

test('MQTT source: part id from the topic suffix or user property; hostile part ids are refused and counted', async () => {
  const handlers = new Map<string, (t: string, p: Buffer, props?: FrameMessageProps) => void>();
  const src = new MqttSource('cam', (filter, h) => void handlers.set(filter, h));
  const frames: Frame[] = [];
  await src.start((f) => frames.push(f));
  assert.deepEqual([...handlers.keys()], ['camera/cam/image', 'camera/cam/image/+']);
  const img = Buffer.from([1, 2, 3]);
  handlers.get('camera/cam/image/+')!('camera/cam/image/A-1', img);
  handlers.get('camera/cam/image')!('camera/cam/image', img, { userProperties: { part_id: ['B-2', 'x'] } });
  handlers.get('camera/cam/image')!('camera/cam/image', img, { userProperties: { part_id: 'x'.repeat(500) } });
  handlers.get('camera/cam/image')!('camera/cam/image', img, { userProperties: { part_id: 'a b\u0000' } });
  assert.deepEqual(
    frames.map((f) => f.partId),
    ['A-1', 'B-2', null, null],
  );
  assert.equal(src.view().badPartId, 2);
  assert.ok(frames.every((f) => f.image === img && f.cameraId === 'cam' && f.frameId.length > 0));
  await src.stop();
  handlers.get('camera/cam/image')!('camera/cam/image', img);
  assert.equal(frames.length, 4, 'nothing after stop');
});

test('MQTT source: raw frames from user properties; hostile format/size properties make an invalid part, never a guess', async () => {
  const handlers = new Map<string, (t: string, p: Buffer, props?: FrameMessageProps) => void>();
  const src = new MqttSource('cam', (filter, h) => void handlers.set(filter, h));
  const frames: Frame[] = [];
  await src.start((f) => frames.push(f));
  const send = (props: Record<string, string | string[]>) =>
    handlers.get('camera/cam/image')!('camera/cam/image', Buffer.alloc(12), { userProperties: props });
  send({ format: 'rgb24', width: '2', height: '2' });
  send({ format: 'gray8', width: ['3', '9'], height: '4' });
  const hostile: Record<string, string>[] = [
    { format: 'RGB24', width: '2', height: '2' },
    { format: 'rgb24\u0000', width: '2', height: '2' },
    { format: 'x'.repeat(10000), width: '2', height: '2' },
    { format: 'rgb24', width: '-2', height: '2' },
    { format: 'rgb24', width: '0x10', height: '2' },
    { format: 'rgb24', width: ' 2', height: '2' },
    { format: 'rgb24', width: '2.0', height: '2' },
    { format: 'rgb24', width: '1e3', height: '2' },
    { format: 'rgb24', width: '1234567', height: '2' },
    { format: 'rgb24', width: '٢', height: '2' },
    { format: 'rgb24', height: '2' },
    { format: 'rgb24' },
  ];
  for (const props of hostile) send(props);
  assert.deepEqual(frames[0]!.raw, { width: 2, height: 2, channels: 3 });
  assert.deepEqual(frames[1]!.raw, { width: 3, height: 4, channels: 1 });
  const bad = frames.slice(2);
  assert.equal(bad.length, hostile.length, 'every message is still a part');
  for (const f of bad) {
    assert.equal(f.raw, undefined);
    assert.ok(f.invalid && f.invalid.length < 200, `a short reason: ${f.invalid}`);
  }
  assert.equal(src.view().raw, 2);
  assert.equal(src.view().badFormat, hostile.length);
  // Without `format` the payload is an encoded image, whatever else is set.
  send({ width: '2', height: '2' });
  assert.equal(frames.at(-1)!.raw, undefined);
  assert.equal(frames.at(-1)!.invalid, undefined);
  await src.stop();
});

test('HTTP snapshot source: errors, oversized bodies and slow servers are counted, never frames', async () => {
  let mode = 'error';
  const srv = createServer((_req, res) => {
    if (mode === 'error') {
      res.writeHead(500);
      res.end();
    } else if (mode === 'big') {
      res.writeHead(200, { 'content-length': '5000' });
      res.end(Buffer.alloc(5000));
    } else if (mode === 'chunked-big') {
      res.writeHead(200);
      res.write(Buffer.alloc(3000));
      res.end(Buffer.alloc(3000));
    } else if (mode === 'slow') {
      setTimeout(() => res.end('late'), 500);
    } else res.end(Buffer.from('img'));
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const port = (srv.address() as { port: number }).port;
  const frames: Frame[] = [];
  const src = new HttpSnapshotSource('snap', `http://user:pw@127.0.0.1:${port}/s.jpg`, 60, 100, 4096, log);
  try {
    await src.start((f) => frames.push(f));
    for (const m of ['error', 'big', 'chunked-big', 'slow']) {
      mode = m;
      const before = src.view().errors as number;
      for (let i = 0; i < 100 && (src.view().errors as number) === before; i++)
        await new Promise((r) => setTimeout(r, 20));
      assert.ok((src.view().errors as number) > before, `${m} counted`);
    }
    assert.equal(frames.length, 0);
    mode = 'ok';
    for (let i = 0; i < 100 && frames.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.ok(frames.length > 0);
    assert.doesNotMatch(String(src.view().url), /pw/);
  } finally {
    await src.stop();
    srv.close();
  }
});
