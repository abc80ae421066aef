// Module types for what wrangler bundles from wrangler.toml's [[rules]].
declare module '*.wasm' {
  const module: WebAssembly.Module;
  export default module;
}
declare module '*.onnx' {
  const bytes: ArrayBuffer;
  export default bytes;
}
declare module '*.dwsm' {
  const bytes: ArrayBuffer;
  export default bytes;
}
