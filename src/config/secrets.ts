import { readFileSync } from 'node:fs';
import type { ScalarTag } from 'yaml';

/**
 * `!env NAME` takes a value from the environment and `!file /path` from a file (trailing newline
 * trimmed, as systemd credentials and Docker secrets are written), so passwords and tokens need
 * not sit in the YAML. A missing variable or unreadable file is a config error with its line.
 */
export function secretTags(env: NodeJS.ProcessEnv): ScalarTag[] {
  return [
    {
      tag: '!env',
      resolve(name, onError) {
        const v = env[name.trim()];
        if (v === undefined) {
          onError(`environment variable ${name.trim()} is not set (EGW_CONFIG_SECRET)`);
          return '';
        }
        return v;
      },
    },
    {
      tag: '!file',
      resolve(path, onError) {
        try {
          return readFileSync(path.trim(), 'utf8').replace(/\r?\n$/, '');
        } catch (err) {
          onError(
            `cannot read secret file ${path.trim()}: ${(err as NodeJS.ErrnoException).code ?? err} (EGW_CONFIG_SECRET)`,
          );
          return '';
        }
      },
    },
  ];
}
