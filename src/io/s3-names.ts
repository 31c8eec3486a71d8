// S3's bucket naming rules, checked before any request: the SDK rejects only some bad names (a '/') with an error
// of its own, and a name like `../..` must never be taken for a path. No SDK import, so `prepare` can check
// --bucket before tokenizing for an hour.
import { UserError } from '../util/errors.js';

const RULES =
  'bucket names are 3 to 63 characters: lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit, no two dots in a row, not an IP address';

/** Why `name` is not a valid S3 bucket name (general-purpose bucket rules), or undefined when it is. */
export function bucketNameProblem(name: string): string | undefined {
  if (name.length < 3 || name.length > 63) return `is ${name.length} characters long`;
  const bad = /[^a-z0-9.-]/.exec(name);
  if (bad) return `contains '${bad[0]}'`;
  if (!/^[a-z0-9]/.test(name) || !/[a-z0-9]$/.test(name)) return 'does not start and end with a letter or digit';
  if (name.includes('..')) return 'has two dots in a row';
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(name)) return 'is formatted as an IP address';
  if (/^(xn--|sthree-|amzn-s3-demo-)/.test(name)) return 'starts with a prefix S3 reserves';
  if (/(-s3alias|--ol-s3|\.mrap|--x-s3|--table-s3)$/.test(name)) return 'ends with a suffix S3 reserves';
  return undefined;
}

/** Throws a UserError naming `where` (e.g. "--bucket", or the s3:// URL) when `name` breaks the rules. */
export function checkBucketName(name: string, where: string): void {
  const problem = bucketNameProblem(name);
  if (problem) throw new UserError(`${where}: '${name}' is not a valid S3 bucket name (it ${problem})`, `give the bucket's name: ${RULES}`);
}
