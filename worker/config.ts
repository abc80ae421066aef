/** A numeric setting from the environment: unset or empty gives the default; anything else must be a number ≥ `min`, or an Error names the variable. */
export function configNumber(value: string | undefined, fallback: number, name: string, min = 0): number {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n < min) throw new Error(`configuration ${name}=${value} must be a number >= ${min}`);
  return n;
}
