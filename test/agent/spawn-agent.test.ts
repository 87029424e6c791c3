// spawnLocalAgent's start bound: an agent that never prints its listening
// line is a clear error naming the bound and the machine's load (agents at
// load ~20 took over 10 s to start, so the default bound is generous).
import t from 'tap';
import { spawnLocalAgent, START_TIMEOUT_MS } from '../../lib/agent/spawn-agent.js';

t.test('an agent that never listens: a clear error naming the bound and the load', async (t) => {
  t.ok(START_TIMEOUT_MS >= 60_000, 'the default bound outlasts a start on a loaded machine');
  const started = spawnLocalAgent({
    slots: 1,
    // Stands in for an agent that hangs before listening.
    wrap: ['sh', '-c', 'exec sleep 60', 'sh'],
    startTimeoutMs: 300,
  });
  await t.rejects(started, {
    message:
      /^mpm agent printed no listening line within 0\.3 s: it hangs, or this machine is too busy to start it \(load average \d+\.\d on \d+ CPUs\)/,
  });
});
