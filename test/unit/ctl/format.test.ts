import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  formatAudit,
  formatDevices,
  formatDuration,
  formatObject,
  formatReading,
  formatTime,
  table,
} from '../../../src/ctl/format.js';

const NOW = Date.UTC(2026, 10, 29, 12, 0, 0);

describe('ctl human output', () => {
  it('rounds durations to two units', () => {
    assert.equal(formatDuration(0), '0 s');
    assert.equal(formatDuration(59_999), '59 s');
    assert.equal(formatDuration(61_000), '1 min');
    assert.equal(formatDuration(3_600_000), '1 h');
    assert.equal(formatDuration(3_600_000 + 25 * 60_000 + 5_000), '1 h 25 min');
    assert.equal(formatDuration(5 * 86_400_000 + 4 * 3_600_000 + 1), '5 d 4 h');
    assert.equal(formatDuration(-5), '0 s');
  });
  it('shows wall-clock times as ISO 8601 UTC with their age, and says when a time is ahead', () => {
    assert.equal(formatTime(NOW - 180_000, NOW), '2026-11-29T11:57:00Z (3 min ago)');
    assert.equal(formatTime(NOW + 10_000, NOW), '2026-11-29T12:00:10Z (10 s ahead of this clock)');
    assert.equal(formatTime(NOW, NOW), '2026-11-29T12:00:00Z (now)');
  });
  it('formats objects as key: value lines; uptime and time keys readable; 1970 clocks shown raw', () => {
    const out = formatObject(
      { gatewayId: 'gw-1', uptimeS: 7500, lastSeen: NOW - 2000, ts: 5000, services: { coap: 'listening' }, list: [] },
      NOW,
    );
    assert.equal(
      out,
      'gatewayId: gw-1\nuptime: 2 h 5 min\nlastSeen: 2026-11-29T11:59:58Z (2 s ago)\nts: 5000\nservices:\n  coap: listening\nlist: (none)\n',
    );
  });
  it('tables for devices and audit, one line per reading for tail', () => {
    const d = formatDevices(
      {
        devices: [
          { id: 'a', transport: 'coap', online: true, lastSeen: NOW - 60_000, messagesIn: 3, errors: 0 },
          { id: 'bb', transport: 'mqtt', online: false, reason: 'will', lastSeen: NOW, messagesIn: 1, errors: 2 },
        ],
      },
      NOW,
    );
    assert.match(d, /^ID {2}TRANSPORT {2}STATE/);
    assert.match(d, /\na +coap +online +2026-11-29T11:59:00Z \(1 min ago\) +3 +0\n/);
    assert.match(d, /offline \(will\)/);
    const a = formatAudit(
      {
        entries: [
          {
            ts: NOW,
            source: '::1:5',
            method: 'PUT',
            resource: '/mgmt/config',
            outcome: 'refused',
            code: '4.00',
            detail: 'x\ny',
          },
        ],
      },
      NOW,
    );
    assert.match(a, /PUT \/mgmt\/config {2}refused {2}4\.00 {2}x y\n$/);
    assert.equal(
      formatReading({ deviceId: 'd', ts: NOW, values: { t: 21.5, door: null }, units: { t: '°C' }, quality: 'bad' }),
      '2026-11-29T12:00:00.000Z  d  t=21.5 °C door=null  [bad]\n',
    );
    assert.equal(formatReading({ deviceId: 'd', pending: true }), undefined);
    assert.equal(table(['A'], []), '(none)\n');
  });
});
