/**
 * @module collector/rebuild/redact
 * Recorded environments may hold secrets: values of variables whose names look like one are
 * replaced before anything is shown (--explain, --json).
 */

const SECRET = /TOKEN|SECRET|PASSW|PASSPHRASE|KEY|CREDENTIAL|AUTH|PRIVATE|COOKIE|SESSION|SIGNATURE|CERT/i;

/** Does this variable name look like it holds a secret? */
export function looksSecret(name: string): boolean {
  return SECRET.test(name);
}

/** "NAME=value" entries with secret-looking values replaced by "<redacted>". */
export function redactEnv(env: string[] | undefined): string[] | undefined {
  return env?.map((kv) => {
    const eq = kv.indexOf('=');
    const name = eq < 0 ? kv : kv.slice(0, eq);
    return eq >= 0 && looksSecret(name) ? `${name}=<redacted>` : kv;
  });
}
