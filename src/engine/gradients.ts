/**
 * Registers the gradient of every tfjs op. tfjs-core's own `register_all_gradients` is ESM with
 * extensionless imports that Node cannot load, so the registrations come from the union package's
 * Node bundle (the same one tfjs-node loads), which shares this process's tfjs-core engine.
 */
import '@tensorflow/tfjs';
