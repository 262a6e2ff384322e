/** The strict Nitro attestation-document verifier of shield-nitro (docs/attestation.md). */

/** Thrown for every refused document; `message` is one line naming the first failed check. */
export declare class AttestationError extends Error {
  /** "format": malformed; "verification": chain, signature, validity; "policy": refused by your policy. */
  readonly code: "format" | "verification" | "policy";
}

export interface VerifyOptions {
  /** PCR index (0..31) -> the acceptable value(s), 48 bytes as hex or bytes. */
  pcrs?: Record<number | string, string | Uint8Array | Array<string | Uint8Array>>;
  /** Your challenge: the document's nonce must be present and equal (constant-time). */
  nonce?: Uint8Array;
  /** user_data must be present and equal. */
  userData?: Uint8Array;
  /** public_key must be present and equal. */
  publicKey?: Uint8Array;
  /** The one trusted root (PEM, exactly one self-signed CA). Default: the embedded AWS Nitro Enclaves Root G1. */
  root?: string;
  /** now - maxAgeMs <= timestamp <= now + 5 s, else "policy". */
  maxAgeMs?: number;
  /** The check time (Date or Unix ms). Default: Date.now(). For stored documents it proves validity at that time only. */
  now?: Date | number;
  /** Accept debug-mode enclaves (PCR0 all zero); refused by default. */
  allowDebug?: boolean;
}

/** Verified claims. An optional field is undefined when absent and null when CBOR null. */
export interface AttestationClaims {
  moduleId: string;
  /** Unix milliseconds. */
  timestamp: number;
  digest: "SHA384";
  /** index -> lowercase hex. */
  pcrs: Record<number, string>;
  certificate: Uint8Array;
  /** Root first, as in the document. */
  cabundle: Uint8Array[];
  publicKey: Uint8Array | null | undefined;
  userData: Uint8Array | null | undefined;
  nonce: Uint8Array | null | undefined;
  /** PCR0 is 48 zero bytes. */
  debug: boolean;
  /** The check time, Unix ms. */
  checkedAt: number;
}

/** Verifies the raw COSE_Sign1 document; resolves with its claims only when everything passed. */
export declare function verifyAttestation(documentBytes: Uint8Array | ArrayBuffer, options?: VerifyOptions): Promise<AttestationClaims>;

/** The fields WITHOUT verifying anything (structure checks only). Never decide on it. */
export declare function decodeDocument(documentBytes: Uint8Array | ArrayBuffer): Omit<AttestationClaims, "debug" | "checkedAt"> & {
  envelope: { protectedHeader: Uint8Array; payload: Uint8Array; signature: Uint8Array; tagged: boolean; indefinite: boolean };
};

/** ["Signature1", protected, h'', payload]: the bytes the COSE signature covers. */
export declare function sigStructure(protectedHeader: Uint8Array, payload: Uint8Array): Uint8Array;

export declare const AWS_ROOT_G1_PEM: string;
/** SHA-256 of the AWS root's DER, lowercase hex (641a0321…79bb5b). */
export declare const AWS_ROOT_G1_SHA256: string;
export declare const MAX_DOCUMENT_SIZE: number;
export declare const MAX_PAYLOAD_SIZE: number;
export declare function toHex(bytes: Uint8Array): string;
export declare function fromHex(hex: string, what: string): Uint8Array;
