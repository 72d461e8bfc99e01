export * from './definitions.js';
export * from './server.js';
