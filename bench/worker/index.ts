/**
 * The benchmark worker: the product's app (worker/app.ts, the same serving code and Durable
 * Objects) with the bench routes (./routes.ts) mounted beside it. Run by bench/serve.ts and
 * bench/telemetry.ts through `wrangler dev --config bench/wrangler.toml`; never deployed.
 */
import { createApp } from '../../worker/app.ts';
import { createWasmSession } from '../../worker/engine/ort-workerd.ts';
import { DEFAULT_VERSIONS } from '../../models/defaults.ts';
import { benchRoutes } from './routes.ts';

export { DriftAggregator, RoutingStore } from '../../worker/index.ts';

const app = createApp({ seed: DEFAULT_VERSIONS, createSession: createWasmSession });
app.route('/', benchRoutes());

export default app;
