export { Module } from './module.js';
export { Linear, LayerNorm, Embedding, Dropout, ModuleList } from './layers.js';
