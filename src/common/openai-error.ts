import type { JsonResponder } from './http-json.js';

/** An error in OpenAI's shape: what the official SDKs parse into their typed exceptions. */
export interface OpenAIError {
  status: number;
  message: string;
  type: string;
  code: string | null;
  param?: string | null;
}

/** `{"error": {"message", "type", "param", "code"}}` */
export function openAIErrorBody(err: OpenAIError): string {
  return JSON.stringify({ error: { message: err.message, type: err.type, param: err.param ?? null, code: err.code } });
}

export function sendOpenAIError(res: JsonResponder, err: OpenAIError, headers: Record<string, string> = {}): void {
  const body = openAIErrorBody(err);
  res.writeHead(err.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers });
  res.end(body);
}

/** OpenAI's error type for a status: the client's fault or the server's. */
export function errorType(status: number): string {
  return status >= 500 ? 'server_error' : 'invalid_request_error';
}

/** Codes for the HTTP server's own protocol errors, by status. */
const PROTOCOL_CODES: Record<number, string> = {
  400: 'bad_request',
  405: 'method_not_allowed',
  408: 'request_timeout',
  413: 'request_too_large',
  417: 'expectation_failed',
  431: 'headers_too_large',
  500: 'internal_error',
  501: 'not_implemented',
  505: 'http_version_not_supported',
};

/** A protocol error of the HTTP/1.1 server (malformed request, 413, 431, ...) in OpenAI's shape. */
export function protocolErrorBody(status: number, message: string): string {
  return openAIErrorBody({ status, message, type: errorType(status), code: PROTOCOL_CODES[status] ?? null });
}
