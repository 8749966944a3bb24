//go:build amd64 && !purego

#include "textflag.h"

// Register use: DI/SI = start, BX = length, R8 = end, R9 = last start of a full block.
// Every path stores or loads only inside [start, start+length): sizes that are not a
// multiple of the vector width are covered by overlapping unaligned accesses.

// NT_FINISH ends a non-temporal kernel at its partial label: SFENCE orders the streaming
// stores, then the 0..63 bytes [DI, R8) of a last partial line, if any, are zeroed with
// regular stores (only inside the range) by a tail call of the temporal kernel small;
// with none it jumps to the kernel's done label.
#define NT_FINISH(small) \
	SFENCE; \
	VZEROUPPER; \
	MOVQ R8, BX; \
	SUBQ DI, BX; \
	JZ   done; \
	MOVQ DI, b_base+0(FP); \
	MOVQ BX, b_len+8(FP); \
	JMP  small(SB)

// ---------------------------------------------------------------------------------------
// func zeroAVX2(b []byte)
TEXT ·zeroAVX2(SB), NOSPLIT, $0-24
	MOVQ b_base+0(FP), DI
	MOVQ b_len+8(FP), BX
	CMPQ BX, $32
	JB   small
	VPXOR Y0, Y0, Y0
	CMPQ BX, $64
	JBE  le64
	CMPQ BX, $128
	JBE  le128
	LEAQ (DI)(BX*1), R8
	VMOVDQU Y0, (DI)          // unaligned head
	ADDQ $32, DI
	ANDQ $-32, DI             // 32-byte aligned, <= start+32
	LEAQ -128(R8), R9
	CMPQ DI, R9
	JA   tail

loop:
	VMOVDQA Y0, (DI)
	VMOVDQA Y0, 32(DI)
	VMOVDQA Y0, 64(DI)
	VMOVDQA Y0, 96(DI)
	ADDQ $128, DI
	CMPQ DI, R9
	JBE  loop

tail:
	VMOVDQU Y0, -128(R8)
	VMOVDQU Y0, -96(R8)
	VMOVDQU Y0, -64(R8)
	VMOVDQU Y0, -32(R8)
	VZEROUPPER
	RET

le128:
	VMOVDQU Y0, (DI)
	VMOVDQU Y0, 32(DI)
	VMOVDQU Y0, -64(DI)(BX*1)
	VMOVDQU Y0, -32(DI)(BX*1)
	VZEROUPPER
	RET

le64:
	VMOVDQU Y0, (DI)
	VMOVDQU Y0, -32(DI)(BX*1)
	VZEROUPPER
	RET

small:
	XORQ AX, AX
	CMPQ BX, $16
	JB   lt16
	MOVQ AX, (DI)
	MOVQ AX, 8(DI)
	MOVQ AX, -16(DI)(BX*1)
	MOVQ AX, -8(DI)(BX*1)
	RET

lt16:
	CMPQ BX, $8
	JB   lt8
	MOVQ AX, (DI)
	MOVQ AX, -8(DI)(BX*1)
	RET

lt8:
	CMPQ BX, $4
	JB   lt4
	MOVL AX, (DI)
	MOVL AX, -4(DI)(BX*1)
	RET

lt4:
	CMPQ BX, $2
	JB   lt2
	MOVW AX, (DI)
	MOVW AX, -2(DI)(BX*1)
	RET

lt2:
	TESTQ BX, BX
	JZ    done
	MOVB  AX, (DI)

done:
	RET

// ---------------------------------------------------------------------------------------
// func zeroAVX2NT(b []byte)
// Streams 64-byte aligned lines with VMOVNTDQ, regular stores for the unaligned head and
// the tail, then SFENCE. Below 512 bytes it is zeroAVX2.
TEXT ·zeroAVX2NT(SB), NOSPLIT, $0-24
	MOVQ b_base+0(FP), DI
	MOVQ b_len+8(FP), BX
	CMPQ BX, $512
	JAE  big
	JMP  ·zeroAVX2(SB)

big:
	VPXOR Y0, Y0, Y0
	LEAQ (DI)(BX*1), R8
	TESTQ $63, DI
	JZ   aligned
	VMOVDQU Y0, (DI)          // unaligned head: one line of regular stores
	VMOVDQU Y0, 32(DI)
	ADDQ $64, DI
	ANDQ $-64, DI             // cache-line aligned, <= start+64

aligned:
	LEAQ -128(R8), R9

loop:
	VMOVNTDQ Y0, (DI)
	VMOVNTDQ Y0, 32(DI)
	VMOVNTDQ Y0, 64(DI)
	VMOVNTDQ Y0, 96(DI)
	ADDQ $128, DI
	CMPQ DI, R9
	JBE  loop

	// Whole lines left: non-temporal too (see zeroAVX512NT).
	LEAQ -64(R8), R9

lines:
	CMPQ DI, R9
	JA   partial
	VMOVNTDQ Y0, (DI)
	VMOVNTDQ Y0, 32(DI)
	ADDQ $64, DI
	JMP  lines

partial:
	NT_FINISH(·zeroAVX2)

done:
	RET

// ---------------------------------------------------------------------------------------
// func zeroAVX512(b []byte)
TEXT ·zeroAVX512(SB), NOSPLIT, $0-24
	MOVQ b_base+0(FP), DI
	MOVQ b_len+8(FP), BX
	CMPQ BX, $32
	JB   small
	VPXOR Y0, Y0, Y0          // VEX encoding clears Z0 entirely
	CMPQ BX, $64
	JBE  le64
	CMPQ BX, $128
	JBE  le128
	CMPQ BX, $256
	JBE  le256
	LEAQ (DI)(BX*1), R8
	VMOVDQU64 Z0, (DI)        // unaligned head
	ADDQ $64, DI
	ANDQ $-64, DI             // 64-byte aligned, <= start+64
	LEAQ -256(R8), R9
	CMPQ DI, R9
	JA   tail

loop:
	VMOVDQA64 Z0, (DI)
	VMOVDQA64 Z0, 64(DI)
	VMOVDQA64 Z0, 128(DI)
	VMOVDQA64 Z0, 192(DI)
	ADDQ $256, DI
	CMPQ DI, R9
	JBE  loop

tail:
	VMOVDQU64 Z0, -256(R8)
	VMOVDQU64 Z0, -192(R8)
	VMOVDQU64 Z0, -128(R8)
	VMOVDQU64 Z0, -64(R8)
	VZEROUPPER
	RET

le256:
	VMOVDQU64 Z0, (DI)
	VMOVDQU64 Z0, 64(DI)
	VMOVDQU64 Z0, -128(DI)(BX*1)
	VMOVDQU64 Z0, -64(DI)(BX*1)
	VZEROUPPER
	RET

le128:
	VMOVDQU64 Z0, (DI)
	VMOVDQU64 Z0, -64(DI)(BX*1)
	VZEROUPPER
	RET

le64:
	VMOVDQU Y0, (DI)
	VMOVDQU Y0, -32(DI)(BX*1)
	VZEROUPPER
	RET

small:
	XORQ AX, AX
	CMPQ BX, $16
	JB   lt16
	MOVQ AX, (DI)
	MOVQ AX, 8(DI)
	MOVQ AX, -16(DI)(BX*1)
	MOVQ AX, -8(DI)(BX*1)
	RET

lt16:
	CMPQ BX, $8
	JB   lt8
	MOVQ AX, (DI)
	MOVQ AX, -8(DI)(BX*1)
	RET

lt8:
	CMPQ BX, $4
	JB   lt4
	MOVL AX, (DI)
	MOVL AX, -4(DI)(BX*1)
	RET

lt4:
	CMPQ BX, $2
	JB   lt2
	MOVW AX, (DI)
	MOVW AX, -2(DI)(BX*1)
	RET

lt2:
	TESTQ BX, BX
	JZ    done
	MOVB  AX, (DI)

done:
	RET

// ---------------------------------------------------------------------------------------
// func zeroAVX512NT(b []byte)
TEXT ·zeroAVX512NT(SB), NOSPLIT, $0-24
	MOVQ b_base+0(FP), DI
	MOVQ b_len+8(FP), BX
	CMPQ BX, $512
	JAE  big
	JMP  ·zeroAVX512(SB)

big:
	VPXOR Y0, Y0, Y0
	LEAQ (DI)(BX*1), R8
	TESTQ $63, DI
	JZ   aligned
	VMOVDQU64 Z0, (DI)        // unaligned head: one regular store, then from the next line on
	ADDQ $64, DI
	ANDQ $-64, DI             // cache-line aligned, <= start+64

aligned:
	LEAQ -256(R8), R9

loop:
	VMOVNTDQ Z0, (DI)
	VMOVNTDQ Z0, 64(DI)
	VMOVNTDQ Z0, 128(DI)
	VMOVNTDQ Z0, 192(DI)
	ADDQ $256, DI
	CMPQ DI, R9
	JBE  loop

	// Whole lines left: non-temporal too. A regular store to a line just
	// written non-temporally would wait for that write to reach memory and
	// read the line back (measured: 12% of the bandwidth of 1 MiB chunks).
	LEAQ -64(R8), R9

lines:
	CMPQ DI, R9
	JA   partial
	VMOVNTDQ Z0, (DI)
	ADDQ $64, DI
	JMP  lines

partial:
	NT_FINISH(·zeroAVX512)

done:
	RET

// ---------------------------------------------------------------------------------------
// func anyAVX2(b []byte) bool
TEXT ·anyAVX2(SB), NOSPLIT, $0-25
	MOVQ b_base+0(FP), SI
	MOVQ b_len+8(FP), BX
	CMPQ BX, $32
	JB   small
	CMPQ BX, $64
	JBE  le64
	CMPQ BX, $128
	JBE  le128
	LEAQ (SI)(BX*1), R8
	VMOVDQU (SI), Y0          // unaligned head
	VPXOR Y1, Y1, Y1
	VPXOR Y2, Y2, Y2
	VPXOR Y3, Y3, Y3
	ADDQ $32, SI
	ANDQ $-32, SI
	LEAQ -128(R8), R9
	CMPQ SI, R9
	JA   tail

loop:
	VPOR (SI), Y0, Y0
	VPOR 32(SI), Y1, Y1
	VPOR 64(SI), Y2, Y2
	VPOR 96(SI), Y3, Y3
	ADDQ $128, SI
	CMPQ SI, R9
	JBE  loop

tail:
	VPOR -128(R8), Y0, Y0
	VPOR -96(R8), Y1, Y1
	VPOR -64(R8), Y2, Y2
	VPOR -32(R8), Y3, Y3
	VPOR Y1, Y0, Y0
	VPOR Y3, Y2, Y2
	VPOR Y2, Y0, Y0
	VPTEST Y0, Y0
	SETNE ret+24(FP)
	VZEROUPPER
	RET

le128:
	VMOVDQU (SI), Y0
	VMOVDQU 32(SI), Y1
	VPOR -64(SI)(BX*1), Y0, Y0
	VPOR -32(SI)(BX*1), Y1, Y1
	VPOR Y1, Y0, Y0
	VPTEST Y0, Y0
	SETNE ret+24(FP)
	VZEROUPPER
	RET

le64:
	VMOVDQU (SI), Y0
	VPOR -32(SI)(BX*1), Y0, Y0
	VPTEST Y0, Y0
	SETNE ret+24(FP)
	VZEROUPPER
	RET

small:
	XORQ AX, AX
	CMPQ BX, $16
	JB   lt16
	MOVQ (SI), AX
	ORQ  8(SI), AX
	ORQ  -16(SI)(BX*1), AX
	ORQ  -8(SI)(BX*1), AX
	JMP  done

lt16:
	CMPQ BX, $8
	JB   lt8
	MOVQ (SI), AX
	ORQ  -8(SI)(BX*1), AX
	JMP  done

lt8:
	CMPQ BX, $4
	JB   lt4
	MOVL (SI), AX
	MOVL -4(SI)(BX*1), CX
	ORL  CX, AX
	JMP  done

lt4:
	CMPQ BX, $2
	JB   lt2
	MOVWLZX (SI), AX
	MOVWLZX -2(SI)(BX*1), CX
	ORL  CX, AX
	JMP  done

lt2:
	TESTQ BX, BX
	JZ    done
	MOVBLZX (SI), AX

done:
	TESTQ AX, AX
	SETNE ret+24(FP)
	RET

// ---------------------------------------------------------------------------------------
// func anyAVX512(b []byte) bool
TEXT ·anyAVX512(SB), NOSPLIT, $0-25
	MOVQ b_base+0(FP), SI
	MOVQ b_len+8(FP), BX
	CMPQ BX, $32
	JB   small
	CMPQ BX, $64
	JBE  le64
	CMPQ BX, $128
	JBE  le128
	CMPQ BX, $256
	JBE  le256
	LEAQ (SI)(BX*1), R8
	VMOVDQU64 (SI), Z0        // unaligned head
	VPXORQ Z1, Z1, Z1
	VPXORQ Z2, Z2, Z2
	VPXORQ Z3, Z3, Z3
	ADDQ $64, SI
	ANDQ $-64, SI
	LEAQ -256(R8), R9
	CMPQ SI, R9
	JA   tail

loop:
	VPORQ (SI), Z0, Z0
	VPORQ 64(SI), Z1, Z1
	VPORQ 128(SI), Z2, Z2
	VPORQ 192(SI), Z3, Z3
	ADDQ $256, SI
	CMPQ SI, R9
	JBE  loop

tail:
	VPORQ -256(R8), Z0, Z0
	VPORQ -192(R8), Z1, Z1
	VPORQ -128(R8), Z2, Z2
	VPORQ -64(R8), Z3, Z3
	VPORQ Z1, Z0, Z0
	VPORQ Z3, Z2, Z2
	VPORQ Z2, Z0, Z0
	JMP  reduce

le256:
	VMOVDQU64 (SI), Z0
	VMOVDQU64 64(SI), Z1
	VPORQ -128(SI)(BX*1), Z0, Z0
	VPORQ -64(SI)(BX*1), Z1, Z1
	VPORQ Z1, Z0, Z0
	JMP  reduce

le128:
	VMOVDQU64 (SI), Z0
	VPORQ -64(SI)(BX*1), Z0, Z0

reduce:
	VEXTRACTI64X4 $1, Z0, Y1
	VPOR Y1, Y0, Y0
	VPTEST Y0, Y0
	SETNE ret+24(FP)
	VZEROUPPER
	RET

le64:
	VMOVDQU (SI), Y0
	VPOR -32(SI)(BX*1), Y0, Y0
	VPTEST Y0, Y0
	SETNE ret+24(FP)
	VZEROUPPER
	RET

small:
	XORQ AX, AX
	CMPQ BX, $16
	JB   lt16
	MOVQ (SI), AX
	ORQ  8(SI), AX
	ORQ  -16(SI)(BX*1), AX
	ORQ  -8(SI)(BX*1), AX
	JMP  done

lt16:
	CMPQ BX, $8
	JB   lt8
	MOVQ (SI), AX
	ORQ  -8(SI)(BX*1), AX
	JMP  done

lt8:
	CMPQ BX, $4
	JB   lt4
	MOVL (SI), AX
	MOVL -4(SI)(BX*1), CX
	ORL  CX, AX
	JMP  done

lt4:
	CMPQ BX, $2
	JB   lt2
	MOVWLZX (SI), AX
	MOVWLZX -2(SI)(BX*1), CX
	ORL  CX, AX
	JMP  done

lt2:
	TESTQ BX, BX
	JZ    done
	MOVBLZX (SI), AX

done:
	TESTQ AX, AX
	SETNE ret+24(FP)
	RET

// ---------------------------------------------------------------------------------------
// func zeroERMS(b []byte)
// REP STOSB. On CPUs with ERMS it can use the fast-string protocol that writes whole lines
// without reading them first (no RFO), which is what glibc memset and Go's clear() use for
// mid-size ranges; cpuzero uses it only in a measured size window (ermsThreshold).
// The direction flag is clear by the Go ABI.
TEXT ·zeroERMS(SB), NOSPLIT, $0-24
	MOVQ b_base+0(FP), DI
	MOVQ b_len+8(FP), CX
	XORL AX, AX
	REP; STOSB
	RET
