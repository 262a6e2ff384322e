/** Attested TLS, client side, for Node (docs/attested-tls.md). */
import type { Agent } from "node:https";
import type { ConnectionOptions } from "node:tls";
import type { AttestationClaims, VerifyOptions } from "./index.js";

export declare const ATTESTATION_PATH: "/.well-known/shield-nitro/attestation";
export declare const TAG: "sn-tls/1";

export interface AttestTlsOptions {
  /** The trusted root PEM (e.g. a simulator's root.pem); default the AWS root. */
  root?: string;
  /** The check time; default now. */
  now?: Date | number;
  /** Connect + handshake + answer, default 10000. */
  timeoutMs?: number;
  /** Bytes of the random nonce, 1..512, default 32. */
  nonceSize?: number;
}

export interface AttestTlsResult {
  spkiSha256Hex: string;
  spkiSha256Base64: string;
  /** For curl --pinnedpubkey. */
  curlPin: string;
  /** The certificate the attested connection saw (DER). */
  certificate: Uint8Array;
  /** The verified document, as received. */
  document: Uint8Array;
  claims: AttestationClaims;
  /** user_data after the 40-byte sn-tls/1 binding. */
  appUserData: Uint8Array;
  /** TLS options that accept only the attested key (ca + checkServerIdentity): for tls.connect or undici's Agent({connect}). */
  tlsOptions: ConnectionOptions;
  /** An https.Agent (keep-alive) that accepts only the attested key; destroy() it when done. */
  agent: Agent;
}

/**
 * Connects without CA verification, fetches a document for a fresh nonce over that connection,
 * verifies it (policy = verifyAttestation's options, without nonce) and that user_data binds the
 * connection's certificate key, then returns the pin. Rejects with AttestationError.
 */
export declare function attestTls(url: string, policy?: Omit<VerifyOptions, "nonce">, options?: AttestTlsOptions): Promise<AttestTlsResult>;

/** An undici Agent for fetch(url, {dispatcher}); needs the `undici` package installed. */
export declare function pinnedDispatcher(result: AttestTlsResult): Promise<unknown>;

export declare function parseTarget(url: string): { host: string; port: number };
export declare function spkiOfCertificate(certificateDer: Uint8Array): Uint8Array;
export declare function spkiSha256(certificateDer: Uint8Array): Uint8Array;
export declare function pinnedTlsOptions(certificateDer: Uint8Array, pin: Uint8Array): ConnectionOptions;
