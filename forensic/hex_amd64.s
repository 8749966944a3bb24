//go:build amd64 && !purego

#include "textflag.h"

// Lowercase hex digits, indexed by nibble (a PSHUFB table).
DATA hexdigits<>+0(SB)/8, $0x3736353433323130
DATA hexdigits<>+8(SB)/8, $0x6665646362613938
GLOBL hexdigits<>(SB), RODATA|NOPTR, $16

DATA lownibbles<>+0(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA lownibbles<>+8(SB)/8, $0x0f0f0f0f0f0f0f0f
GLOBL lownibbles<>(SB), RODATA|NOPTR, $16

// ENC16 encodes the 16 bytes at off(SI) as 32 hex digits in X2 (the first
// 16) and X3, with the digit table in X4 and 0x0f bytes in X5.
#define ENC16(off) \
	VMOVDQU off(SI), X0 \
	VPSRLW $4, X0, X1 \
	VPAND X5, X1, X1 \
	VPAND X5, X0, X0 \
	VPSHUFB X1, X4, X1 \
	VPSHUFB X0, X4, X0 \
	VPUNPCKLBW X0, X1, X2 \
	VPUNPCKHBW X0, X1, X3

// HEX16 encodes the 16 bytes at off(SI) and ANDs the byte-wise equality of
// the digits with the 32 bytes at 2*off(DI) into X7.
#define HEX16(off) \
	ENC16(off) \
	VPCMPEQB (2*off)(DI), X2, X2 \
	VPCMPEQB (2*off+16)(DI), X3, X3 \
	VPAND X2, X7, X7 \
	VPAND X3, X7, X7

// PUT16 encodes the 16 bytes at off(SI) into the 32 bytes at 2*off(DI).
#define PUT16(off) \
	ENC16(off) \
	VMOVDQU X2, (2*off)(DI) \
	VMOVDQU X3, (2*off+16)(DI)

// func hexEncode32AVX(dst *[64]byte, src *[32]byte)
TEXT ·hexEncode32AVX(SB), NOSPLIT, $0-16
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	VMOVDQU hexdigits<>(SB), X4
	VMOVDQU lownibbles<>(SB), X5
	PUT16(0)
	PUT16(16)
	RET

// func hexEqual32AVX(sum *[32]byte, h *byte) bool
// Constant time: every digit is encoded and compared, with no branch.
TEXT ·hexEqual32AVX(SB), NOSPLIT, $0-17
	MOVQ sum+0(FP), SI
	MOVQ h+8(FP), DI
	VMOVDQU hexdigits<>(SB), X4
	VMOVDQU lownibbles<>(SB), X5
	VPCMPEQB X7, X7, X7
	HEX16(0)
	HEX16(16)
	VPMOVMSKB X7, AX
	CMPL AX, $0xffff
	SETEQ ret+16(FP)
	RET
