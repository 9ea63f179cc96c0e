/**
 * Synapse's entity-name rules (NameValidation): after trimming spaces, 1..256 characters from
 * ASCII letters, digits, space and , _ . - + ( ) ' — anything else is a 400.
 */
import { badRequest } from './http.js';

export const MAX_NAME_LENGTH = 256;
const VALID_NAME = /^[a-zA-Z0-9,_.\-+()' ]+$/;

/** Returns the trimmed name or throws a 400 naming the rule that failed. */
export function validateEntityName(raw: unknown): string {
  if (typeof raw !== 'string') throw badRequest('Entity name is required.');
  const name = raw.trim();
  if (name === '') throw badRequest('Entity names cannot be empty strings');
  if (name.length > MAX_NAME_LENGTH) {
    throw badRequest(`Name must be ${MAX_NAME_LENGTH} characters or less`);
  }
  if (!VALID_NAME.test(name)) {
    throw badRequest(
      `Invalid Entity name: '${name}'. Entity names may only contain: letters, numbers, spaces, underscores, ` +
        `hyphens, periods, plus signs, apostrophes, and parentheses`,
    );
  }
  return name;
}
