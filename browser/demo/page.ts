/** The /demo page (placeholder until the demo lands). */
export function demoPage(): string {
  return '<!doctype html><title>driftwatch demo</title><p>demo</p>';
}
