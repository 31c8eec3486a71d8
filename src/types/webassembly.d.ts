// The WebAssembly global that Node provides, declared for the few calls this project makes (bpe-wasm.ts).
// TypeScript ships these types only in its DOM libraries, which would bring browser globals into Node code, and
// @types/node 20 does not declare them.
declare namespace WebAssembly {
  // eslint-disable-next-line @typescript-eslint/no-extraneous-class
  class Module {
    private constructor();
  }
  class Instance {
    readonly exports: Record<string, unknown>;
  }
  interface WebAssemblyInstantiatedSource {
    module: Module;
    instance: Instance;
  }
  type Imports = Record<string, Record<string, unknown>>;
  function compile(bytes: Uint8Array): Promise<Module>;
  function instantiate(module: Module, imports?: Imports): Promise<Instance>;
}
