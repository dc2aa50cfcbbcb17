;; The JSON-escape scan of long strings (src/pipeline/escape-scan.ts), 16 bytes per step.
;; scan(from, len): the index of the first byte in memory[from, len) that a JSON string must
;; escape (below 0x20, '"' or '\'), or len. The caller copies the bytes to memory offset 0 first.
;; Built into src/pipeline/escape-scan-wasm.ts by `node --import tsx scripts/build-escape-scan.ts`.
(module
  (memory (export "memory") 1)
  (func (export "scan") (param $from i32) (param $len i32) (result i32)
    (local $i i32) (local $v v128) (local $mask i32) (local $c i32)
    (local.set $i (local.get $from))
    (block $words
      (loop $word
        (br_if $words (i32.gt_u (i32.add (local.get $i) (i32.const 16)) (local.get $len)))
        (local.set $v (v128.load (local.get $i)))
        (local.set $mask
          (i8x16.bitmask
            (v128.or
              (v128.or
                (i8x16.lt_u (local.get $v) (i8x16.splat (i32.const 0x20)))
                (i8x16.eq (local.get $v) (i8x16.splat (i32.const 0x22))))
              (i8x16.eq (local.get $v) (i8x16.splat (i32.const 0x5c))))))
        (if (local.get $mask)
          (then (return (i32.add (local.get $i) (i32.ctz (local.get $mask))))))
        (local.set $i (i32.add (local.get $i) (i32.const 16)))
        (br $word)))
    (block $bytes
      (loop $byte
        (br_if $bytes (i32.ge_u (local.get $i) (local.get $len)))
        (local.set $c (i32.load8_u (local.get $i)))
        (if (i32.or
              (i32.lt_u (local.get $c) (i32.const 0x20))
              (i32.or (i32.eq (local.get $c) (i32.const 0x22)) (i32.eq (local.get $c) (i32.const 0x5c))))
          (then (return (local.get $i))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $byte)))
    (local.get $len)))
