/**
 * Byte strings for the differential tests. Cases are JavaScript strings holding one byte per
 * character (latin1), so that a case reads like the wire and any byte 0-255 can be written as
 * `\xNN`; these helpers turn them into buffers and back into readable, escaped text for reports.
 */

export const toBytes = (text: string): Buffer => Buffer.from(text, 'latin1');

/** Printable ASCII as is; CR, LF and HTAB as `\r`, `\n`, `\t`; every other byte as `\xNN`. */
export function escapeBytes(text: string, max = 600): string {
  let out = '';
  for (let i = 0; i < text.length && out.length < max; i++) {
    const c = text.charCodeAt(i);
    if (c === 13) out += '\\r';
    else if (c === 10) out += '\\n';
    else if (c === 9) out += '\\t';
    else if (c === 92) out += '\\\\';
    else if (c === 34) out += '\\"';
    else if (c >= 32 && c < 127) out += text[i];
    else out += `\\x${c.toString(16).padStart(2, '0')}`;
  }
  return out.length >= max && text.length > 0 ? `"${out}"... (${text.length} bytes)` : `"${out}"`;
}
