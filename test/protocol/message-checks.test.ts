import t from 'tap';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { format, resolveConfig } from 'prettier';
import { messageCheckSource } from '../../lib/protocol/message-check-source.js';
import { repoRoot } from '../helpers/paths.js';

const generated = join(repoRoot, 'lib', 'protocol', 'message-checks.generated.ts');

t.test('the generated message checks are those of the schemas now', async (t) => {
  const options = (await resolveConfig(generated)) ?? {};
  const fresh = await format(messageCheckSource(), { ...options, filepath: generated });
  t.equal(
    readFileSync(generated, 'utf8'),
    fresh,
    'lib/protocol/message-checks.generated.ts is out of date: run `make message-checks`',
  );
});

/** Modules a file imports statically (dynamic import() is lazy: not followed). */
function staticImports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [
    ...text.matchAll(/^(?:import|export)\b[^;]*?\bfrom\s+'([^']+)'|^import\s+'([^']+)'/gms),
  ].map((m) => (m[1] ?? m[2])!);
}

t.test(
  'mpmake starts without TypeBox (checks are generated code) or native msgpackr',
  async (t) => {
    const seen = new Set<string>();
    const packages = new Set<string>();
    const walk = (file: string): void => {
      if (seen.has(file)) return;
      seen.add(file);
      for (const spec of staticImports(file)) {
        if (spec.startsWith('.')) walk(join(dirname(file), spec));
        else packages.add(spec);
      }
    };
    walk(join(repoRoot, 'dist', 'cli', 'mpmake.js'));
    t.ok(seen.size > 20, `followed the imports (${seen.size} modules)`);
    t.ok(packages.has('msgpackr/pack'), 'the walk reaches the wire code');
    t.notOk(
      packages.has('msgpackr'),
      "msgpackr's main entry (native extractor) is the agent's only",
    );
    t.notOk(
      [...packages].some((p) => p.startsWith('@sinclair/typebox')),
      `no TypeBox among ${[...packages].join(', ')}`,
    );
  },
);
