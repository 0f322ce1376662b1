import { createInterface } from 'node:readline';
import { hashPassword } from './password.js';

const USAGE = `usage: edge-gateway hash-password [PASSWORD]
Prints the scrypt hash for broker.users[].password_hash. Without PASSWORD it is read from stdin
(first line), which keeps it out of the shell history:  edge-gateway hash-password < secret.txt
`;

async function readSecret(): Promise<string> {
  const tty = process.stdin.isTTY;
  if (tty) process.stderr.write('password: ');
  const rl = createInterface({ input: process.stdin, terminal: false });
  try {
    for await (const line of rl) return line.replace(/\r$/, '');
    return '';
  } finally {
    rl.close();
  }
}

/** `edge-gateway hash-password [PASSWORD]` → prints `scrypt$N$r$p$salt$hash`. */
export async function hashPasswordCommand(args: string[]): Promise<number> {
  if (args[0] === '--help' || args[0] === '-h' || args.length > 1) {
    process.stderr.write(USAGE);
    return args.length > 1 ? 2 : 0;
  }
  const password = args[0] ?? (await readSecret());
  if (password.length === 0) {
    process.stderr.write(`empty password refused\n${USAGE}`);
    return 2;
  }
  process.stdout.write(`${await hashPassword(password)}\n`);
  return 0;
}
