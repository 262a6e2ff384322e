/** Attested TLS, client side, for Node (docs/attested-tls.md). */
import type { Agent } from "node:https";
import type { ConnectionOptions, TLSSocket } from "node:tls";
import type { AttestationClaims, VerifyOptions } from "./index.js";

export declare const ATTESTATION_PATH: "/.well-known/shield-nitro/attestation";
export declare const TAG: "sn-tls/1";

export interface AttestTlsOptions {
  /** The trusted root PEM (e.g. a simulator's root.pem); default the AWS root. */
  root?: string;
  /** The check time; default now. */
  now?: Date | number;
  /** An attestation's connect + handshake + answer, and a pinned connection's handshake; default 10000. */
  timeoutMs?: number;
  /** Bytes of the random nonce, 1..512, default 32. */
  nonceSize?: number;
}

/**
 * A verified endpoint, pinned. Its agent, connector and connect() accept the pinned key; a new
 * connection that meets another key (the enclave rotates its key on a schedule) makes them
 * attest the endpoint again over a fresh connection (same policy, root, nonce size, timeout;
 * concurrent connections share one attestation) and go on only if the fresh document verifies
 * and binds the key met. Otherwise that connection fails, before a request byte is sent, with
 * the re-attestation's AttestationError or an Error whose code is "ERR_SN_PIN_MISMATCH"; the
 * pin stays what was last verified. The fields below describe the current verification.
 */
export interface AttestTlsResult {
  readonly spkiSha256Hex: string;
  readonly spkiSha256Base64: string;
  /** For curl --pinnedpubkey (curl does not re-attest: fetch the pin again after a rotation). */
  readonly curlPin: string;
  /** The certificate the attested connection saw (DER). */
  readonly certificate: Uint8Array;
  /** The verified document, as received. */
  readonly document: Uint8Array;
  readonly claims: AttestationClaims;
  /** user_data after the 40-byte sn-tls/1 binding. */
  readonly appUserData: Uint8Array;
  /** How many times the endpoint was attested: 1, then +1 per re-attestation that verified. */
  readonly verifications: number;
  /**
   * TLS options that accept only the key attested now (ca + checkServerIdentity), for
   * tls.connect: they do not re-attest; another key fails with ERR_SN_PIN_MISMATCH or a
   * certificate error. Read them again after a re-attestation, or use connect().
   */
  readonly tlsOptions: ConnectionOptions;
  /** An https.Agent (keep-alive) that accepts only attested keys; destroy() it when done. */
  readonly agent: Agent;
  /** undici's `connect` option (Agent, Client, Pool): a connector that accepts only attested keys. */
  readonly connector: (options: { hostname: string; port: string | number; servername?: string; httpSocket?: unknown },
                       callback: (error: Error | null, socket?: TLSSocket) => void) => void;
  /** A TLS socket to the endpoint whose key is attested (re-attesting after a rotation). */
  connect(): Promise<TLSSocket>;
}

/**
 * Connects without CA verification, fetches a document for a fresh nonce over that connection,
 * verifies it (policy = verifyAttestation's options, without nonce) and that user_data binds the
 * connection's certificate key, then returns the endpoint pinned to that key. Rejects with
 * AttestationError (TypeError for a bad URL or nonceSize).
 */
export declare function attestTls(url: string, policy?: Omit<VerifyOptions, "nonce">, options?: AttestTlsOptions): Promise<AttestTlsResult>;

/** An undici Agent (connect: result.connector) for fetch(url, {dispatcher}); re-attests like the agent. Needs the `undici` package installed. */
export declare function pinnedDispatcher(result: AttestTlsResult): Promise<unknown>;

export declare function parseTarget(url: string): { host: string; port: number };
export declare function spkiOfCertificate(certificateDer: Uint8Array): Uint8Array;
export declare function spkiSha256(certificateDer: Uint8Array): Uint8Array;
export declare function pinnedTlsOptions(certificateDer: Uint8Array, pin: Uint8Array): ConnectionOptions;
