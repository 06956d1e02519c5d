import { randomBytes } from 'node:crypto';
import { DecryptionError, Keyring } from '../../src/crypto/keyring';

describe('Keyring', () => {
  const k1 = randomBytes(32);
  const k2 = randomBytes(32);

  it('round-trips and never stores the plaintext', () => {
    const ring = new Keyring([k1]);
    const sealed = ring.seal('bitrise-pat-123', 'credential:a');
    expect(sealed.blob.toString('utf8')).not.toContain('bitrise-pat-123');
    expect(ring.open(sealed, 'credential:a')).toBe('bitrise-pat-123');
  });

  it('refuses a ciphertext moved to another row (associated data)', () => {
    const ring = new Keyring([k1]);
    const sealed = ring.seal('secret', 'credential:a');
    expect(() => ring.open(sealed, 'credential:b')).toThrow(DecryptionError);
  });

  it('detects tampering', () => {
    const ring = new Keyring([k1]);
    const sealed = ring.seal('secret', 'x');
    sealed.blob[sealed.blob.length - 1]! ^= 1;
    expect(() => ring.open(sealed, 'x')).toThrow(DecryptionError);
  });

  it('rotates: new key seals, old key still opens, removed key fails clearly', () => {
    const before = new Keyring([k1]).seal('secret', 'x');
    const rotated = new Keyring([k2, k1]);
    expect(rotated.open(before, 'x')).toBe('secret');
    expect(rotated.isStale(before)).toBe(true);
    expect(rotated.isStale(rotated.seal('secret', 'x'))).toBe(false);
    expect(() => new Keyring([k2]).open(before, 'x')).toThrow(/No configured ENCRYPTION_KEY/);
  });
});
