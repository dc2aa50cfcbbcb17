/** Creates the configured publisher. Broker modules are loaded only when chosen. */
import type { PublisherConfig } from '../config/schema.js';
import type { Logger } from '../observability/logger.js';
import type { Publisher } from './publisher.js';

export type { OutboundMessage, Publisher } from './publisher.js';

export async function createPublisher(config: PublisherConfig, logger: Logger): Promise<Publisher> {
  const log = logger.child({ publisher: config.type });
  switch (config.type) {
    case 'stdout': {
      const { StdoutPublisher } = await import('./stdout.js');
      return new StdoutPublisher();
    }
    case 'nats': {
      const { NatsPublisher } = await import('./nats.js');
      return new NatsPublisher(config, log);
    }
    case 'kafka': {
      const { KafkaPublisher } = await import('./kafka.js');
      return new KafkaPublisher(config, log);
    }
    case 'rabbitmq': {
      const { RabbitMqPublisher } = await import('./rabbitmq.js');
      return new RabbitMqPublisher(config, log);
    }
    case 'google_pubsub': {
      const { PubSubPublisher } = await import('./google-pubsub.js');
      return new PubSubPublisher(config, log);
    }
  }
}
