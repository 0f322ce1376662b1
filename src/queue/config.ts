import { type Static } from '@sinclair/typebox';
import { section } from '../config/sections.js';

export const QueueConfigSchema = section({}, 'Priority classes, bandwidth and the store-and-forward outbox.');
export type QueueConfig = Static<typeof QueueConfigSchema>;
