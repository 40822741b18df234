import { isIPv4, isIPv6 } from 'node:net';

/**
 * RFC 1123 §2.1 label: letters, digits and hyphens, 1-63 characters, no hyphen at either end. One
 * named leniency: underscores, as in Docker Compose v1 container names (`app_vllm_1`), which
 * Docker's DNS resolves and which deployments of the original registered.
 */
const LABEL = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;
export const HOST_NAME_MAX = 253;

/** IPv4, IPv6, or IPv6 in brackets as in a URL (`[::1]`). */
export function isIpLiteral(value: string): boolean {
  if (value.startsWith('[') && value.endsWith(']')) return isIPv6(value.slice(1, -1));
  return isIPv4(value) || isIPv6(value);
}

/**
 * Why `value` is neither a host name (RFC 1123 labels, at most 253 characters, one trailing dot
 * allowed) nor an IP literal, or undefined when it is one. Routers and probes put the value into
 * URLs, so spaces, control characters, slashes and the like must never get that far.
 */
export function hostProblem(value: string): string | undefined {
  if (value === '') return 'must not be empty';
  if (isIpLiteral(value)) return undefined;
  const name = value.endsWith('.') ? value.slice(0, -1) : value;
  if (name.length > HOST_NAME_MAX) return `must be a host name of at most ${HOST_NAME_MAX} characters or an IP address`;
  const labels = name.split('.');
  for (const label of labels) {
    if (!LABEL.test(label)) {
      if (label === '') return 'must be a host name or an IP address (empty label)';
      if (label.length > 63) return 'must be a host name or an IP address (a label is longer than 63 characters)';
      return "must be a host name (letters, digits, '-' and '_' in dot-separated labels, RFC 1123) or an IP address";
    }
  }
  // An all-numeric last label is a mistyped IPv4 address ("10.0.0", "10.0.0.256"), not a name (RFC 3696 §2).
  if (/^[0-9]+$/.test(labels[labels.length - 1]!)) return 'must be a valid IPv4 address or a host name';
  return undefined;
}
