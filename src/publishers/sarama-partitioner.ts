/**
 * The partition sarama's HashPartitioner picks (ihippik/wal-listener's Kafka partitioner when
 * messageKeyFrom is set): FNV-1a (32-bit) of the key bytes, as a signed int32, modulo the partition
 * count, negated when negative. Used with `publisher.eventFormat: compat` so a row's partition does
 * not move when switching from the Go daemon.
 */
export function saramaPartition(key: Buffer, partitions: number): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    hash ^= key[i]!;
    hash = Math.imul(hash, 0x01000193);
  }
  // Go: int32(sum) % n keeps the dividend's sign (as JavaScript's %), then takes the absolute value.
  // (`| 0` also turns JavaScript's -0 into 0.)
  return Math.abs((hash | 0) % partitions) | 0;
}
