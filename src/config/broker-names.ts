/**
 * Names each broker can use. A subject is `<topic>.<topicPrefix><schema>_<table>` (topicsMap may
 * replace `<schema>_<table>`); what the config fixes is checked when it is loaded, and
 * validateSubject checks a subject computed at run time, once per table. A name a broker refuses
 * would otherwise be retried forever as "broker not reachable".
 */
import type { PublisherType } from './schema.js';

interface Rules {
  /** "NATS subject", "Kafka topic", ... */
  readonly subjectNoun: string;
  /** Problem of a whole subject ("it has ..."), or null. */
  subject(subject: string): string | null;
  /** Extra rule for `publisher.topic` alone, which names a stream or exchange on some brokers. */
  topic?(topic: string): string | null;
}

const WHITESPACE = /\s/;

/** Whitespace, C0 control characters or DEL: nothing a NATS name may contain. */
function unprintable(text: string): boolean {
  return WHITESPACE.test(text) || [...text].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f);
}

const nats: Rules = {
  subjectNoun: 'NATS subject',
  subject(subject) {
    if (unprintable(subject)) return 'it contains whitespace or a control character';
    if (/[*>]/.test(subject)) return 'it contains a wildcard (* or >)';
    if (subject.split('.').some((token) => token === '')) return 'it has an empty token (a dot at either end, or two dots in a row)';
    return null;
  },
  topic(topic) {
    const bad = /[.*>/\\]/.exec(topic);
    if (bad) return `it cannot be a NATS stream name: it contains "${bad[0]}"`;
    if (unprintable(topic)) return 'it cannot be a NATS stream name: it contains whitespace or a control character';
    return null;
  },
};

const kafka: Rules = {
  subjectNoun: 'Kafka topic',
  subject(subject) {
    if (!/^[a-zA-Z0-9._-]+$/.test(subject)) return 'it contains characters other than a-z, A-Z, 0-9, ".", "_" and "-"';
    if (subject.length > 249) return `it is ${subject.length} characters long; Kafka allows 249`;
    if (subject === '.' || subject === '..') return 'it is "." or ".."';
    return null;
  },
};

const rabbitmq: Rules = {
  subjectNoun: 'RabbitMQ routing key',
  subject(subject) {
    const bytes = Buffer.byteLength(subject);
    return bytes > 255 ? `it is ${bytes} bytes long; AMQP allows 255` : null;
  },
  topic(topic) {
    const bytes = Buffer.byteLength(topic);
    if (bytes > 255) return `it cannot be a RabbitMQ exchange name: it is ${bytes} bytes long; AMQP allows 255`;
    if (topic.startsWith('amq.')) return 'it cannot be a RabbitMQ exchange name: names starting with "amq." are reserved';
    return null;
  },
};

const googlePubsub: Rules = {
  subjectNoun: 'Pub/Sub topic id',
  subject(subject) {
    if (!/^[A-Za-z]/.test(subject)) return 'it does not start with a letter';
    if (subject.startsWith('goog')) return 'it starts with "goog", which Google reserves';
    if (!/^[A-Za-z0-9\-_.~+%]+$/.test(subject)) return 'it contains characters other than letters, digits and - _ . ~ + %';
    if (subject.length < 3 || subject.length > 255) return `it is ${subject.length} characters long; Pub/Sub allows 3 to 255`;
    return null;
  },
};

const RULES: Record<PublisherType, Rules | null> = { nats, kafka, rabbitmq, google_pubsub: googlePubsub, stdout: null };

/** Why `broker` cannot publish to `subject`, in one sentence, or null when it can. */
export function validateSubject(broker: PublisherType, subject: string): string | null {
  const rules = RULES[broker];
  const problem = rules?.subject(subject);
  return problem ? `${rules!.subjectNoun} "${subject}" cannot be used: ${problem}` : null;
}

export interface NameIssue {
  path: string[];
  message: string;
}

/** The shortest `<schema>_<table>`: subjects built with it are as short as any real one. */
const SAMPLE_NAME = 's_t';

/**
 * Problems with the names the config fixes for `broker`: publisher.topic, publisher.topicPrefix and
 * every listener.topicsMap value. Each issue names its key.
 */
export function brokerNameIssues(
  publisher: { type: PublisherType; topic: string; topicPrefix: string },
  topicsMap: Record<string, string>,
): NameIssue[] {
  const rules = RULES[publisher.type];
  if (!rules) return [];
  const { topic, topicPrefix } = publisher;
  /** `subject` is checked with SAMPLE_NAME for the part known only at run time, and shown with a placeholder. */
  const subjectProblem = (value: string, subject: string): string | null => {
    const problem = rules.subject(subject);
    const shown = subject.replace(new RegExp(`${SAMPLE_NAME}$`), '<schema>_<table>');
    return problem ? `${JSON.stringify(value)} gives ${rules.subjectNoun}s such as "${shown}": ${problem}` : null;
  };

  const topicProblem = rules.topic?.(topic);
  if (topicProblem) return [{ path: ['publisher', 'topic'], message: `${JSON.stringify(topic)}: ${topicProblem}` }];
  const viaTopic = subjectProblem(topic, `${topic}.${SAMPLE_NAME}`);
  if (viaTopic) return [{ path: ['publisher', 'topic'], message: viaTopic }];
  const viaPrefix = topicPrefix === '' ? null : subjectProblem(topicPrefix, `${topic}.${topicPrefix}${SAMPLE_NAME}`);
  if (viaPrefix) return [{ path: ['publisher', 'topicPrefix'], message: viaPrefix }];
  const issues: NameIssue[] = [];
  for (const [table, value] of Object.entries(topicsMap)) {
    // A mapped value is the whole last part: check the subject as it will be, and show it so.
    const subject = `${topic}.${topicPrefix}${value}`;
    const problem = rules.subject(subject);
    if (problem) issues.push({ path: ['listener', 'topicsMap', table], message: `${JSON.stringify(value)} gives ${rules.subjectNoun} "${subject}": ${problem}` });
  }
  return issues;
}
