/** A mistake the person can fix: printed as one line, exit status 2 (usage) or 1 (refused, or the input does not hold). */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}
