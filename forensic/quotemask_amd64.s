//go:build amd64 && !purego

#include "textflag.h"

// func quoteMasksAVX2(in *byte, blocks int, qm *uint64)
// For each 64-byte block of in, one word with bit i set where byte i is
// '"' (0x22) or '\\' (0x5c).
TEXT ·quoteMasksAVX2(SB), NOSPLIT, $0-24
	MOVQ in+0(FP), SI
	MOVQ blocks+8(FP), CX
	MOVQ qm+16(FP), DI
	MOVL $0x22, AX
	MOVQ AX, X0
	VPBROADCASTB X0, Y0
	MOVL $0x5c, AX
	MOVQ AX, X1
	VPBROADCASTB X1, Y1
	TESTQ CX, CX
	JZ done

loop:
	VMOVDQU (SI), Y2
	VMOVDQU 32(SI), Y3
	VPCMPEQB Y0, Y2, Y4
	VPCMPEQB Y1, Y2, Y5
	VPOR Y5, Y4, Y4
	VPCMPEQB Y0, Y3, Y6
	VPCMPEQB Y1, Y3, Y7
	VPOR Y7, Y6, Y6
	VPMOVMSKB Y4, AX
	VPMOVMSKB Y6, BX
	SHLQ $32, BX
	ORQ BX, AX
	MOVQ AX, (DI)
	ADDQ $64, SI
	ADDQ $8, DI
	DECQ CX
	JNZ loop

done:
	VZEROUPPER
	RET
