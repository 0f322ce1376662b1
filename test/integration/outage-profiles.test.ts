import { test } from 'node:test';
import assert from 'node:assert/strict';
import mqtt from 'mqtt';
import { PROFILE_NAMES } from '../../src/uplink/profiles/index.js';
import { runProfileCrashLoop, runProfileOutage, startProfileRig } from './profile-scenarios.js';

// The outage and kill -9 guarantees (outage.test.ts, crash.test.ts) hold whatever the cloud profile:
// store-and-forward sits under the profile, which only maps a committed batch to topic and payload.
for (const profile of PROFILE_NAMES) {
  test(`outage with uplink.profile ${profile}: every reading acknowledged while the cloud was down arrives; a cloud command reaches the local device`, async (t) => {
    const rig = await startProfileRig(profile);
    t.after(() => rig.close());
    const r = await runProfileOutage(rig, 2000, 2, 90000);
    t.diagnostic(JSON.stringify(r));
    assert.equal(r.acked, 2000);
    assert.equal(r.missing, 0);
    assert.ok(r.downSeconds > 0);

    // Down: the cloud's command in the profile's layout → the command pipeline (allow-list, dedupe,
    // audit) → the local commands/{deviceId}.
    const dev = await mqtt.connectAsync(`mqtt://127.0.0.1:${rig.brokerPort}`, {
      protocolVersion: 4,
      clientId: 'pump-1',
    });
    t.after(() => dev.endAsync(true));
    const got: string[] = [];
    dev.on('message', (_t, p) => got.push(p.toString()));
    await dev.subscribeAsync('commands/pump-1', { qos: 1 });
    await rig.sendCommand('pump-1', '{"id":"c-1","start":true}');
    const deadline = performance.now() + 10000;
    while (got.length === 0 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(got.length, 1, 'command delivered locally');
    assert.deepEqual(
      JSON.parse(got[0]!),
      profile === 'sparkplug-b' ? { cmd: '{"id":"c-1","start":true}' } : { id: 'c-1', start: true },
    );
    // Up: its result, through the profile (mqtt/aws: the result topic; azure: a D2C event; sparkplug: NDATA).
    const result = await rig.side.waitFor(() => rig.commandResults('pump-1')[0], 10000, 'the command result');
    assert.equal(result['deviceId'], 'pump-1');
    assert.equal(result['status'], 'delivered');
    assert.equal(result['ok'], true);
    if (profile !== 'sparkplug-b') assert.equal(result['id'], 'c-1');
    // A device uplink.downlink.allow does not list: refused with the reason, whatever the profile.
    await rig.sendCommand('valve-1', '{"id":"c-2","open":true}');
    const refusal = await rig.side.waitFor(() => rig.commandResults('valve-1')[0], 10000, 'the refusal');
    assert.equal(refusal['status'], 'refused');
    assert.equal(refusal['code'], 'EGW_DOWNLINK_DENIED');
    // The twin, the profile's way: the reported state arrives (retained {prefix}/state, an Azure
    // reported-properties PATCH, a Sparkplug NDATA); a desired config comes down and its outcome goes up
    // (refused: config.desired is not in the allow-list). Sparkplug has no desired config.
    const state = await rig.side.waitFor(() => rig.reportedStates()[0], 15000, 'the reported state');
    assert.equal(state['gatewayId'], 'gw-e2e');
    if (profile !== 'sparkplug-b') {
      await rig.sendDesired(3, { gateway: { log_level: 'debug' } });
      const rep = await rig.side
        .waitFor(() => rig.configReported()[0], 10000, 'config/reported')
        .catch((e: Error) => {
          // What the gateway said about its link and the downlink meanwhile (the failure is otherwise mute).
          const said = rig.gateway.logs
            .filter((l) => l.level !== 'info' || /uplink|downlink|desired|config/.test(String(l['mod'] ?? l.msg)))
            .slice(-25)
            .map((l) => JSON.stringify(l))
            .join('\n');
          throw new Error(`${e.message}; gateway log:\n${said}`);
        });
      assert.equal(rep['status'], 'refused');
      assert.equal(rep['code'], 'EGW_DOWNLINK_DENIED');
    }
  });

  test(`kill -9 with uplink.profile ${profile}: 4 kills during ingest, every PUBACKed reading reaches the cloud`, async (t) => {
    const rig = await startProfileRig(profile);
    t.after(() => rig.close());
    const r = await runProfileCrashLoop(rig, 4, 2, 400, 90000);
    t.diagnostic(JSON.stringify(r));
    assert.ok(r.acked > 100, `only ${r.acked} acknowledged`);
    assert.equal(r.missing, 0);
    if (profile === 'sparkplug-b') {
      // The MQTT will: a kill -9 with the cloud up makes the broker publish the NDEATH registered at
      // CONNECT, whose bdSeq is the one of the session's NBIRTH (Sparkplug B 3.0 §5.2).
      const births = () => rig.side.got.filter((g) => g.topic === 'spBv1.0/g1/NBIRTH/gw-e2e').length;
      await rig.gateway.stop('SIGKILL');
      const n = births();
      await rig.restartGateway();
      const deadline = performance.now() + 10000;
      while (births() === n && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      await rig.gateway.stop('SIGKILL');
      while (rig.bdSeqs('NDEATH').at(-1)?.lastBirthBdSeq === undefined && performance.now() < deadline) {
        await new Promise((r) => setTimeout(r, 20));
      }
      const deaths = rig.bdSeqs('NDEATH');
      const last = deaths.at(-1);
      assert.ok(last && last.lastBirthBdSeq !== undefined, 'an NDEATH after the last NBIRTH');
      assert.equal(last.bdSeq, last.lastBirthBdSeq, 'the will carries the bdSeq of the NBIRTH');
    }
  });
}
