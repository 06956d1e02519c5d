import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';

/**
 * AES-256-GCM envelope for secrets at rest. Each ciphertext records the id of the key that sealed
 * it, so ENCRYPTION_KEY can be rotated: the first key seals, every listed key can still open.
 * The associated data binds a ciphertext to the row it belongs to, so a sealed token copied onto
 * another connection fails to open instead of leaking across tenants.
 */
export interface Sealed {
  keyId: string;
  /** iv (12 bytes) ‖ auth tag (16 bytes) ‖ ciphertext */
  blob: Buffer;
}

const IV_BYTES = 12;
const TAG_BYTES = 16;

/** A short, stable, non-secret fingerprint of a key: safe to store beside the ciphertext. */
export function keyIdOf(key: Buffer): string {
  return createHash('sha256').update('conduit-key-id:').update(key).digest('hex').slice(0, 16);
}

export class DecryptionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DecryptionError';
  }
}

export class Keyring {
  private readonly keys: Map<string, Buffer>;
  private readonly currentId: string;

  constructor(keys: Buffer[]) {
    const [current] = keys;
    if (!current) throw new Error('Keyring needs at least one key');
    for (const k of keys) if (k.length !== 32) throw new Error('Encryption keys must be 32 bytes');
    this.keys = new Map(keys.map((k) => [keyIdOf(k), k]));
    this.currentId = keyIdOf(current);
  }

  /** The id of the key that seals (the first of ENCRYPTION_KEY). */
  get currentKeyId(): string {
    return this.currentId;
  }

  seal(plaintext: string, associatedData: string): Sealed {
    const key = this.keys.get(this.currentId)!;
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', key, iv);
    cipher.setAAD(Buffer.from(associatedData, 'utf8'));
    const ct = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return { keyId: this.currentId, blob: Buffer.concat([iv, cipher.getAuthTag(), ct]) };
  }

  open(sealed: Sealed, associatedData: string): string {
    const key = this.keys.get(sealed.keyId);
    if (!key) throw new DecryptionError(`No configured ENCRYPTION_KEY has id ${sealed.keyId}`);
    const iv = sealed.blob.subarray(0, IV_BYTES);
    const tag = sealed.blob.subarray(IV_BYTES, IV_BYTES + TAG_BYTES);
    const ct = sealed.blob.subarray(IV_BYTES + TAG_BYTES);
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, iv);
      decipher.setAAD(Buffer.from(associatedData, 'utf8'));
      decipher.setAuthTag(tag);
      return Buffer.concat([decipher.update(ct), decipher.final()]).toString('utf8');
    } catch {
      throw new DecryptionError('Ciphertext failed authentication');
    }
  }

  /** True when the value was sealed with an older key and should be re-sealed. */
  isStale(sealed: Sealed): boolean {
    return sealed.keyId !== this.currentId;
  }
}
