package cudazero

import "strings"

// Kernel entry names in kernelPTX (the CUDA test double recognizes them too).
const (
	zeroKernel       = "kvh_scatter_zero"
	verifyKernel     = "kvh_verify_nonzero"
	poolZeroKernel   = "kvh_pool_zero"
	poolVerifyKernel = "kvh_pool_verify"
	// poolZeroVerifyKernel zeroes and reads back in one pass.
	poolZeroVerifyKernel = "kvh_pool_zero_verify"
)

// kernelPTX holds the five hand-written kernels, JIT-compiled by the driver for
// the GPU at hand (PTX ISA 7.0 is accepted by every CUDA >= 11.0 driver;
// sm_50 is the lowest target those drivers still support). The descriptor
// kernels take a table of {u64 ptr, u64 len} entries and walk it grid-stride:
// CTA b handles descriptors b, b+gridDim, ...; inside a descriptor the CTA's
// threads cover the unaligned head byte by byte, the 16-byte-aligned body with
// 16-byte vector accesses, and the tail byte by byte. Tables may live in
// device memory or in pinned host memory the device maps (unified
// addressing); the kernels only read them.
//
// kvh_scatter_zero(table, n): stores zeros.
// kvh_verify_nonzero(table, n, counter, result): reads every byte back (the
// body four 16-byte loads per thread per iteration, for memory-level
// parallelism); every non-zero aligned 4-byte word counts 4, every non-zero
// head/tail byte counts 1; each thread adds its total (if any) to the device
// counter with one 64-bit atomic. The count is therefore an upper bound of the
// non-zero bytes at 4-byte granularity, and 0 exactly when every byte is zero.
//
// Publishing the count (every verify kernel): counter is device memory
// {u64 count, u32 done}, zero when the launch starts. With result = 0 the
// count stays there (the host copies it with cuMemcpyDtoHAsync). Otherwise
// result is pinned host memory mapped for the device: after its atomics each
// CTA fences (membar.gl) and synchronizes, thread 0 increments done, and the
// CTA that brings done to gridDim reads the count and zeroes it with
// atom.exch, zeroes done, stores the count to *result and fences
// (membar.sys). Kernel completion, then the event recorded after it, make the
// store visible to the host; the counter is left zero for the next launch.
//
// The pool kernels take the shape of a paged pool instead of a descriptor per
// range: a region table of {u64 base, u64 stride, u64 block_bytes} entries,
// a list of u32 block ids and nchunk, the number of 64 KiB chunks of the
// largest block_bytes. Work item w (grid-stride over CTAs) is chunk
// w % nchunk of block ids[(w / nchunk) % nblocks] in region
// (w / nchunk) / nblocks: the bytes [addr+c*64K, min(addr+block_bytes,
// addr+(c+1)*64K)) with addr = base + id*stride (nothing when c*64K >=
// block_bytes). Each chunk is walked like a descriptor above.
//
// kvh_pool_zero(regions, nregions, ids, nblocks, nchunk, counter): stores
// zeros (counter unused).
// kvh_pool_verify(regions, nregions, ids, nblocks, nchunk, counter, result):
// the counting rule of kvh_verify_nonzero, per chunk, then the count is
// published.
// kvh_pool_zero_verify(regions, nregions, ids, nblocks, nchunk, counter,
// result): one pass that does both, chunk by chunk: the CTA stores zeros over
// the chunk, waits at a barrier (bar.sync orders the stores before the loads
// of every thread of the CTA), then reads the chunk back through L2
// (ld.global.cg, the device's point of coherence) with the threads rotated by
// one warp, so every word is read by a different warp than the one that wrote
// it, and counts as kvh_pool_verify does. The read-back mostly hits L2, which
// is why this costs far less than a second pass over memory; what it proves
// is what any later reader on the device sees at that moment.
//
// kernelPTX is the module: the descriptor kernels, then the pool kernels.
// The end of every verify kernel (publishPTX), the body the two counting
// pool kernels share (poolCountPTX) and the chunk-zeroing loop of the two
// zeroing pool kernels (chunkZeroPTX) are written once and filled in.
var kernelPTX = ptxHeader + scatterZeroPTX + "\n" +
	verifyNonzeroPTX + publishPTX("V", "%rd13", "kvh_verify_nonzero_param_2", "kvh_verify_nonzero_param_3", "%p10", "%rd32", "%rd33", "%rd34", "%rd35", "%r32", "%r33") + "\n" +
	poolZeroPTX + "\n" +
	poolCountPTX(false) + publishPTX("PV", "%rd30", "kvh_pool_verify_param_5", "kvh_pool_verify_param_6", "%p8", "%rd32", "%rd33", "%rd36", "%rd37", "%r18", "%r19") + "\n" +
	poolCountPTX(true) + publishPTX("PF", "%rd30", "kvh_pool_zero_verify_param_5", "kvh_pool_zero_verify_param_6", "%p8", "%rd32", "%rd33", "%rd36", "%rd37", "%r18", "%r19")

const ptxHeader = `
.version 7.0
.target sm_50
.address_size 64

`

// scatterZeroPTX is kvh_scatter_zero(table, n).
const scatterZeroPTX = `.visible .entry kvh_scatter_zero(
	.param .u64 kvh_scatter_zero_param_0,
	.param .u32 kvh_scatter_zero_param_1
)
{
	.reg .pred 	%p<5>;
	.reg .b16 	%rs<2>;
	.reg .b32 	%r<8>;
	.reg .b64 	%rd<16>;

	ld.param.u64 	%rd1, [kvh_scatter_zero_param_0];
	ld.param.u32 	%r1, [kvh_scatter_zero_param_1];
	cvta.to.global.u64 	%rd1, %rd1;
	mov.u32 	%r2, %ctaid.x;
	mov.u32 	%r3, %nctaid.x;
	mov.u32 	%r4, %tid.x;
	mov.u32 	%r5, %ntid.x;
	cvt.u64.u32 	%rd2, %r4;
	cvt.u64.u32 	%rd3, %r5;
	shl.b64 	%rd4, %rd2, 4;
	shl.b64 	%rd5, %rd3, 4;
	mov.u16 	%rs1, 0;
	mov.u32 	%r6, 0;
$Z_desc:
	setp.ge.u32 	%p1, %r2, %r1;
	@%p1 bra 	$Z_done;
	mul.wide.u32 	%rd6, %r2, 16;
	add.s64 	%rd6, %rd1, %rd6;
	ld.global.u64 	%rd7, [%rd6];
	ld.global.u64 	%rd8, [%rd6+8];
	cvta.to.global.u64 	%rd7, %rd7;
	add.s64 	%rd9, %rd7, %rd8;
	add.s64 	%rd10, %rd7, 15;
	and.b64 	%rd10, %rd10, -16;
	min.u64 	%rd10, %rd10, %rd9;
	and.b64 	%rd11, %rd9, -16;
	max.u64 	%rd11, %rd11, %rd10;
	add.s64 	%rd12, %rd7, %rd2;
$Z_head:
	setp.ge.u64 	%p2, %rd12, %rd10;
	@%p2 bra 	$Z_body0;
	st.global.u8 	[%rd12], %rs1;
	add.s64 	%rd12, %rd12, %rd3;
	bra.uni 	$Z_head;
$Z_body0:
	add.s64 	%rd12, %rd10, %rd4;
$Z_body:
	setp.ge.u64 	%p3, %rd12, %rd11;
	@%p3 bra 	$Z_tail0;
	st.global.v4.u32 	[%rd12], {%r6, %r6, %r6, %r6};
	add.s64 	%rd12, %rd12, %rd5;
	bra.uni 	$Z_body;
$Z_tail0:
	add.s64 	%rd12, %rd11, %rd2;
$Z_tail:
	setp.ge.u64 	%p4, %rd12, %rd9;
	@%p4 bra 	$Z_next;
	st.global.u8 	[%rd12], %rs1;
	add.s64 	%rd12, %rd12, %rd3;
	bra.uni 	$Z_tail;
$Z_next:
	add.s32 	%r2, %r2, %r3;
	bra.uni 	$Z_desc;
$Z_done:
	ret;
}
`

// verifyNonzeroPTX is kvh_verify_nonzero(table, n, counter, result) up to
// its publishPTX end.
const verifyNonzeroPTX = `.visible .entry kvh_verify_nonzero(
	.param .u64 kvh_verify_nonzero_param_0,
	.param .u32 kvh_verify_nonzero_param_1,
	.param .u64 kvh_verify_nonzero_param_2,
	.param .u64 kvh_verify_nonzero_param_3
)
{
	.reg .pred 	%p<12>;
	.reg .b16 	%rs<4>;
	.reg .b32 	%r<34>;
	.reg .b64 	%rd<36>;

	ld.param.u64 	%rd1, [kvh_verify_nonzero_param_0];
	ld.param.u32 	%r1, [kvh_verify_nonzero_param_1];
	cvta.to.global.u64 	%rd1, %rd1;
	mov.u32 	%r2, %ctaid.x;
	mov.u32 	%r3, %nctaid.x;
	mov.u32 	%r4, %tid.x;
	mov.u32 	%r5, %ntid.x;
	cvt.u64.u32 	%rd2, %r4;
	cvt.u64.u32 	%rd3, %r5;
	shl.b64 	%rd4, %rd2, 4;
	shl.b64 	%rd5, %rd3, 4;
	mov.u64 	%rd13, 0;
$V_desc:
	setp.ge.u32 	%p1, %r2, %r1;
	@%p1 bra 	$V_done;
	mul.wide.u32 	%rd6, %r2, 16;
	add.s64 	%rd6, %rd1, %rd6;
	ld.global.u64 	%rd7, [%rd6];
	ld.global.u64 	%rd8, [%rd6+8];
	cvta.to.global.u64 	%rd7, %rd7;
	add.s64 	%rd9, %rd7, %rd8;
	add.s64 	%rd10, %rd7, 15;
	and.b64 	%rd10, %rd10, -16;
	min.u64 	%rd10, %rd10, %rd9;
	and.b64 	%rd11, %rd9, -16;
	max.u64 	%rd11, %rd11, %rd10;
	add.s64 	%rd12, %rd7, %rd2;
$V_head:
	setp.ge.u64 	%p2, %rd12, %rd10;
	@%p2 bra 	$V_body0;
	ld.global.u8 	%rs1, [%rd12];
	setp.ne.s16 	%p5, %rs1, 0;
	selp.u64 	%rd14, 1, 0, %p5;
	add.s64 	%rd13, %rd13, %rd14;
	add.s64 	%rd12, %rd12, %rd3;
	bra.uni 	$V_head;
$V_body0:
	add.s64 	%rd12, %rd10, %rd4;
	shl.b64 	%rd20, %rd5, 2;
	mul.lo.s64 	%rd24, %rd5, 3;
$V_body4:
	add.s64 	%rd21, %rd12, %rd24;
	setp.ge.u64 	%p3, %rd21, %rd11;
	@%p3 bra 	$V_body1;
	add.s64 	%rd22, %rd12, %rd5;
	add.s64 	%rd23, %rd22, %rd5;
	ld.global.v4.u32 	{%r10, %r11, %r12, %r13}, [%rd12];
	ld.global.v4.u32 	{%r14, %r15, %r16, %r17}, [%rd22];
	ld.global.v4.u32 	{%r18, %r19, %r20, %r21}, [%rd23];
	ld.global.v4.u32 	{%r22, %r23, %r24, %r25}, [%rd21];
	setp.ne.s32 	%p5, %r10, 0;
	selp.u32 	%r26, 4, 0, %p5;
	setp.ne.s32 	%p5, %r11, 0;
	selp.u32 	%r27, 4, 0, %p5;
	add.s32 	%r26, %r26, %r27;
	setp.ne.s32 	%p5, %r12, 0;
	selp.u32 	%r27, 4, 0, %p5;
	add.s32 	%r26, %r26, %r27;
	setp.ne.s32 	%p5, %r13, 0;
	selp.u32 	%r27, 4, 0, %p5;
	add.s32 	%r26, %r26, %r27;
	setp.ne.s32 	%p5, %r14, 0;
	selp.u32 	%r27, 4, 0, %p5;
	add.s32 	%r26, %r26, %r27;
	setp.ne.s32 	%p5, %r15, 0;
	selp.u32 	%r27, 4, 0, %p5;
	add.s32 	%r26, %r26, %r27;
	setp.ne.s32 	%p5, %r16, 0;
	selp.u32 	%r27, 4, 0, %p5;
	add.s32 	%r26, %r26, %r27;
	setp.ne.s32 	%p5, %r17, 0;
	selp.u32 	%r27, 4, 0, %p5;
	add.s32 	%r26, %r26, %r27;
	setp.ne.s32 	%p5, %r18, 0;
	selp.u32 	%r27, 4, 0, %p5;
	add.s32 	%r26, %r26, %r27;
	setp.ne.s32 	%p5, %r19, 0;
	selp.u32 	%r27, 4, 0, %p5;
	add.s32 	%r26, %r26, %r27;
	setp.ne.s32 	%p5, %r20, 0;
	selp.u32 	%r27, 4, 0, %p5;
	add.s32 	%r26, %r26, %r27;
	setp.ne.s32 	%p5, %r21, 0;
	selp.u32 	%r27, 4, 0, %p5;
	add.s32 	%r26, %r26, %r27;
	setp.ne.s32 	%p5, %r22, 0;
	selp.u32 	%r27, 4, 0, %p5;
	add.s32 	%r26, %r26, %r27;
	setp.ne.s32 	%p5, %r23, 0;
	selp.u32 	%r27, 4, 0, %p5;
	add.s32 	%r26, %r26, %r27;
	setp.ne.s32 	%p5, %r24, 0;
	selp.u32 	%r27, 4, 0, %p5;
	add.s32 	%r26, %r26, %r27;
	setp.ne.s32 	%p5, %r25, 0;
	selp.u32 	%r27, 4, 0, %p5;
	add.s32 	%r26, %r26, %r27;
	cvt.u64.u32 	%rd14, %r26;
	add.s64 	%rd13, %rd13, %rd14;
	add.s64 	%rd12, %rd12, %rd20;
	bra.uni 	$V_body4;
$V_body1:
	setp.ge.u64 	%p3, %rd12, %rd11;
	@%p3 bra 	$V_tail0;
	ld.global.v4.u32 	{%r10, %r11, %r12, %r13}, [%rd12];
	setp.ne.s32 	%p5, %r10, 0;
	selp.u64 	%rd14, 4, 0, %p5;
	add.s64 	%rd13, %rd13, %rd14;
	setp.ne.s32 	%p6, %r11, 0;
	selp.u64 	%rd15, 4, 0, %p6;
	add.s64 	%rd13, %rd13, %rd15;
	setp.ne.s32 	%p7, %r12, 0;
	selp.u64 	%rd16, 4, 0, %p7;
	add.s64 	%rd13, %rd13, %rd16;
	setp.ne.s32 	%p8, %r13, 0;
	selp.u64 	%rd17, 4, 0, %p8;
	add.s64 	%rd13, %rd13, %rd17;
	add.s64 	%rd12, %rd12, %rd5;
	bra.uni 	$V_body1;
$V_tail0:
	add.s64 	%rd12, %rd11, %rd2;
$V_tail:
	setp.ge.u64 	%p4, %rd12, %rd9;
	@%p4 bra 	$V_next;
	ld.global.u8 	%rs1, [%rd12];
	setp.ne.s16 	%p5, %rs1, 0;
	selp.u64 	%rd14, 1, 0, %p5;
	add.s64 	%rd13, %rd13, %rd14;
	add.s64 	%rd12, %rd12, %rd3;
	bra.uni 	$V_tail;
$V_next:
	add.s32 	%r2, %r2, %r3;
	bra.uni 	$V_desc;
`

// poolZeroPTX is kvh_pool_zero(regions, nregions, ids, nblocks, nchunk, counter).
var poolZeroPTX = `.visible .entry kvh_pool_zero(
	.param .u64 kvh_pool_zero_param_0,
	.param .u32 kvh_pool_zero_param_1,
	.param .u64 kvh_pool_zero_param_2,
	.param .u32 kvh_pool_zero_param_3,
	.param .u32 kvh_pool_zero_param_4,
	.param .u64 kvh_pool_zero_param_5
)
{
	.reg .pred 	%p<8>;
	.reg .b16 	%rs<2>;
	.reg .b32 	%r<12>;
	.reg .b64 	%rd<32>;

	ld.param.u64 	%rd1, [kvh_pool_zero_param_0];
	ld.param.u32 	%r1, [kvh_pool_zero_param_1];
	ld.param.u64 	%rd2, [kvh_pool_zero_param_2];
	ld.param.u32 	%r2, [kvh_pool_zero_param_3];
	ld.param.u32 	%r3, [kvh_pool_zero_param_4];
	cvta.to.global.u64 	%rd1, %rd1;
	cvta.to.global.u64 	%rd2, %rd2;
	cvt.u64.u32 	%rd3, %r1;
	cvt.u64.u32 	%rd4, %r2;
	cvt.u64.u32 	%rd5, %r3;
	mul.lo.s64 	%rd6, %rd3, %rd4;
	mul.lo.s64 	%rd6, %rd6, %rd5;
	mov.u32 	%r4, %ctaid.x;
	mov.u32 	%r5, %nctaid.x;
	mov.u32 	%r6, %tid.x;
	mov.u32 	%r7, %ntid.x;
	cvt.u64.u32 	%rd7, %r4;
	cvt.u64.u32 	%rd8, %r5;
	cvt.u64.u32 	%rd9, %r6;
	cvt.u64.u32 	%rd10, %r7;
	shl.b64 	%rd11, %rd9, 4;
	shl.b64 	%rd12, %rd10, 4;
	mov.u16 	%rs1, 0;
	mov.u32 	%r8, 0;
$PZ_work:
	setp.ge.u64 	%p1, %rd7, %rd6;
	@%p1 bra 	$PZ_done;
	div.u64 	%rd13, %rd7, %rd5;
	mul.lo.s64 	%rd14, %rd13, %rd5;
	sub.s64 	%rd14, %rd7, %rd14;
	div.u64 	%rd15, %rd13, %rd4;
	mul.lo.s64 	%rd16, %rd15, %rd4;
	sub.s64 	%rd16, %rd13, %rd16;
	mul.lo.s64 	%rd17, %rd15, 24;
	add.s64 	%rd17, %rd1, %rd17;
	ld.global.u64 	%rd18, [%rd17];
	ld.global.u64 	%rd19, [%rd17+8];
	ld.global.u64 	%rd20, [%rd17+16];
	shl.b64 	%rd21, %rd16, 2;
	add.s64 	%rd21, %rd2, %rd21;
	ld.global.u32 	%r9, [%rd21];
	cvt.u64.u32 	%rd22, %r9;
	mul.lo.s64 	%rd22, %rd22, %rd19;
	add.s64 	%rd22, %rd18, %rd22;
	shl.b64 	%rd23, %rd14, 16;
	setp.ge.u64 	%p2, %rd23, %rd20;
	@%p2 bra 	$PZ_next;
	sub.s64 	%rd24, %rd20, %rd23;
	min.u64 	%rd24, %rd24, 65536;
	add.s64 	%rd25, %rd22, %rd23;
	cvta.to.global.u64 	%rd25, %rd25;
	add.s64 	%rd26, %rd25, %rd24;
	add.s64 	%rd27, %rd25, 15;
	and.b64 	%rd27, %rd27, -16;
	min.u64 	%rd27, %rd27, %rd26;
	and.b64 	%rd28, %rd26, -16;
	max.u64 	%rd28, %rd28, %rd27;
` + chunkZeroPTX("PZ_", "PZ_next", "%rs1", "%r8") + `$PZ_next:
	add.s64 	%rd7, %rd7, %rd8;
	bra.uni 	$PZ_work;
$PZ_done:
	ret;
}
`

// publishPTX returns the end of a verify kernel, from its $<l>_done label:
// the thread's count acc goes into the device counter (kernel parameter
// counter) with one atomic, then, when the result parameter is not 0, the
// last CTA publishes it (see "Publishing the count" above). p, rdC, rdT,
// rdR, rdZ, rT and rT2 are scratch registers free at that point.
func publishPTX(l, acc, counter, result, p, rdC, rdT, rdR, rdZ, rT, rT2 string) string {
	return strings.NewReplacer("@L@", l, "@acc@", acc, "@counter@", counter, "@result@", result, "@p@", p,
		"@rdC@", rdC, "@rdT@", rdT, "@rdR@", rdR, "@rdZ@", rdZ, "@rT@", rT, "@rT2@", rT2).Replace(publishTemplate)
}

const publishTemplate = `$@L@_done:
	setp.eq.s64 	@p@, @acc@, 0;
	@@p@ bra 	$@L@_pub;
	ld.param.u64 	@rdC@, [@counter@];
	cvta.to.global.u64 	@rdC@, @rdC@;
	atom.global.add.u64 	@rdT@, [@rdC@], @acc@;
$@L@_pub:
	ld.param.u64 	@rdR@, [@result@];
	setp.eq.u64 	@p@, @rdR@, 0;
	@@p@ bra 	$@L@_ret;
	membar.gl;
	bar.sync 	0;
	mov.u32 	@rT@, %tid.x;
	setp.ne.u32 	@p@, @rT@, 0;
	@@p@ bra 	$@L@_ret;
	ld.param.u64 	@rdC@, [@counter@];
	cvta.to.global.u64 	@rdC@, @rdC@;
	mov.u32 	@rT2@, 1;
	atom.global.add.u32 	@rT@, [@rdC@+8], @rT2@;
	add.u32 	@rT@, @rT@, 1;
	mov.u32 	@rT2@, %nctaid.x;
	setp.ne.u32 	@p@, @rT@, @rT2@;
	@@p@ bra 	$@L@_ret;
	membar.gl;
	mov.u64 	@rdZ@, 0;
	atom.global.exch.b64 	@rdT@, [@rdC@], @rdZ@;
	mov.u32 	@rT2@, 0;
	st.global.u32 	[@rdC@+8], @rT2@;
	cvta.to.global.u64 	@rdR@, @rdR@;
	st.volatile.global.u64 	[@rdR@], @rdT@;
	membar.sys;
$@L@_ret:
	ret;
}
`

// poolCountPTX returns kvh_pool_verify (fused false) or kvh_pool_zero_verify
// (fused true) up to its publishPTX end. They differ only in what fused adds:
// the warp-rotated thread index (%rd34, and %rd35 = %rd34*16) and zero
// registers, the zero phase and barrier before each chunk's read-back, and
// loads through L2 (ld.global.cg).
func poolCountPTX(fused bool) string {
	r := strings.NewReplacer("@name@", "kvh_pool_verify", "@L@", "PV", "@rot@", "", "@zero@", "",
		"@tid@", "%rd9", "@tid16@", "%rd11", "@ld@", "ld.global")
	if fused {
		r = strings.NewReplacer("@name@", "kvh_pool_zero_verify", "@L@", "PF", "@rot@", poolRotatePTX, "@zero@", poolZeroPhasePTX,
			"@tid@", "%rd34", "@tid16@", "%rd35", "@ld@", "ld.global.cg")
	}
	return r.Replace(poolCountTemplate)
}

const poolCountTemplate = `.visible .entry @name@(
	.param .u64 @name@_param_0,
	.param .u32 @name@_param_1,
	.param .u64 @name@_param_2,
	.param .u32 @name@_param_3,
	.param .u32 @name@_param_4,
	.param .u64 @name@_param_5,
	.param .u64 @name@_param_6
)
{
	.reg .pred 	%p<12>;
	.reg .b16 	%rs<3>;
	.reg .b32 	%r<20>;
	.reg .b64 	%rd<40>;

	ld.param.u64 	%rd1, [@name@_param_0];
	ld.param.u32 	%r1, [@name@_param_1];
	ld.param.u64 	%rd2, [@name@_param_2];
	ld.param.u32 	%r2, [@name@_param_3];
	ld.param.u32 	%r3, [@name@_param_4];
	cvta.to.global.u64 	%rd1, %rd1;
	cvta.to.global.u64 	%rd2, %rd2;
	cvt.u64.u32 	%rd3, %r1;
	cvt.u64.u32 	%rd4, %r2;
	cvt.u64.u32 	%rd5, %r3;
	mul.lo.s64 	%rd6, %rd3, %rd4;
	mul.lo.s64 	%rd6, %rd6, %rd5;
	mov.u32 	%r4, %ctaid.x;
	mov.u32 	%r5, %nctaid.x;
	mov.u32 	%r6, %tid.x;
	mov.u32 	%r7, %ntid.x;
	cvt.u64.u32 	%rd7, %r4;
	cvt.u64.u32 	%rd8, %r5;
	cvt.u64.u32 	%rd9, %r6;
	cvt.u64.u32 	%rd10, %r7;
	shl.b64 	%rd11, %rd9, 4;
	shl.b64 	%rd12, %rd10, 4;
	mov.u64 	%rd30, 0;
@rot@$@L@_work:
	setp.ge.u64 	%p1, %rd7, %rd6;
	@%p1 bra 	$@L@_done;
	div.u64 	%rd13, %rd7, %rd5;
	mul.lo.s64 	%rd14, %rd13, %rd5;
	sub.s64 	%rd14, %rd7, %rd14;
	div.u64 	%rd15, %rd13, %rd4;
	mul.lo.s64 	%rd16, %rd15, %rd4;
	sub.s64 	%rd16, %rd13, %rd16;
	mul.lo.s64 	%rd17, %rd15, 24;
	add.s64 	%rd17, %rd1, %rd17;
	ld.global.u64 	%rd18, [%rd17];
	ld.global.u64 	%rd19, [%rd17+8];
	ld.global.u64 	%rd20, [%rd17+16];
	shl.b64 	%rd21, %rd16, 2;
	add.s64 	%rd21, %rd2, %rd21;
	ld.global.u32 	%r9, [%rd21];
	cvt.u64.u32 	%rd22, %r9;
	mul.lo.s64 	%rd22, %rd22, %rd19;
	add.s64 	%rd22, %rd18, %rd22;
	shl.b64 	%rd23, %rd14, 16;
	setp.ge.u64 	%p2, %rd23, %rd20;
	@%p2 bra 	$@L@_next;
	sub.s64 	%rd24, %rd20, %rd23;
	min.u64 	%rd24, %rd24, 65536;
	add.s64 	%rd25, %rd22, %rd23;
	cvta.to.global.u64 	%rd25, %rd25;
	add.s64 	%rd26, %rd25, %rd24;
	add.s64 	%rd27, %rd25, 15;
	and.b64 	%rd27, %rd27, -16;
	min.u64 	%rd27, %rd27, %rd26;
	and.b64 	%rd28, %rd26, -16;
	max.u64 	%rd28, %rd28, %rd27;
@zero@	add.s64 	%rd29, %rd25, @tid@;
$@L@_head:
	setp.ge.u64 	%p3, %rd29, %rd27;
	@%p3 bra 	$@L@_body0;
	@ld@.u8 	%rs1, [%rd29];
	setp.ne.s16 	%p6, %rs1, 0;
	selp.u64 	%rd31, 1, 0, %p6;
	add.s64 	%rd30, %rd30, %rd31;
	add.s64 	%rd29, %rd29, %rd10;
	bra.uni 	$@L@_head;
$@L@_body0:
	add.s64 	%rd29, %rd27, @tid16@;
$@L@_body:
	setp.ge.u64 	%p4, %rd29, %rd28;
	@%p4 bra 	$@L@_tail0;
	@ld@.v4.u32 	{%r10, %r11, %r12, %r13}, [%rd29];
	setp.ne.s32 	%p6, %r10, 0;
	selp.u32 	%r14, 4, 0, %p6;
	setp.ne.s32 	%p6, %r11, 0;
	selp.u32 	%r15, 4, 0, %p6;
	add.s32 	%r14, %r14, %r15;
	setp.ne.s32 	%p6, %r12, 0;
	selp.u32 	%r15, 4, 0, %p6;
	add.s32 	%r14, %r14, %r15;
	setp.ne.s32 	%p6, %r13, 0;
	selp.u32 	%r15, 4, 0, %p6;
	add.s32 	%r14, %r14, %r15;
	cvt.u64.u32 	%rd31, %r14;
	add.s64 	%rd30, %rd30, %rd31;
	add.s64 	%rd29, %rd29, %rd12;
	bra.uni 	$@L@_body;
$@L@_tail0:
	add.s64 	%rd29, %rd28, @tid@;
$@L@_tail:
	setp.ge.u64 	%p5, %rd29, %rd26;
	@%p5 bra 	$@L@_next;
	@ld@.u8 	%rs1, [%rd29];
	setp.ne.s16 	%p6, %rs1, 0;
	selp.u64 	%rd31, 1, 0, %p6;
	add.s64 	%rd30, %rd30, %rd31;
	add.s64 	%rd29, %rd29, %rd10;
	bra.uni 	$@L@_tail;
$@L@_next:
	add.s64 	%rd7, %rd7, %rd8;
	bra.uni 	$@L@_work;
`

// poolRotatePTX sets up the fused kernel's read-back thread index
// (tid + 32) % ntid and its zero registers.
const poolRotatePTX = `	add.u32 	%r17, %r6, 32;
	rem.u32 	%r17, %r17, %r7;
	cvt.u64.u32 	%rd34, %r17;
	shl.b64 	%rd35, %rd34, 4;
	mov.u16 	%rs2, 0;
	mov.u32 	%r16, 0;
`

// poolZeroPhasePTX zeroes the chunk [%rd25, %rd26) (aligned body
// [%rd27, %rd28)) with the CTA's threads, then waits at a barrier.
var poolZeroPhasePTX = chunkZeroPTX("PF_z", "PF_zdone", "%rs2", "%r16") + `$PF_zdone:
	bar.sync 	0;
`

// chunkZeroPTX returns the loop both pool-zeroing kernels run over one chunk
// [%rd25, %rd26) with aligned body [%rd27, %rd28): a thread's bytes of the
// unaligned head, its 16-byte stores of the body, its bytes of the tail,
// then a branch to $<done>. Labels start with $<l>; b is the zero byte
// register, w the zero word register.
func chunkZeroPTX(l, done, b, w string) string {
	return strings.NewReplacer("@L@", l, "@done@", done, "@b@", b, "@w@", w).Replace(chunkZeroTemplate)
}

const chunkZeroTemplate = `	add.s64 	%rd29, %rd25, %rd9;
$@L@head:
	setp.ge.u64 	%p3, %rd29, %rd27;
	@%p3 bra 	$@L@body0;
	st.global.u8 	[%rd29], @b@;
	add.s64 	%rd29, %rd29, %rd10;
	bra.uni 	$@L@head;
$@L@body0:
	add.s64 	%rd29, %rd27, %rd11;
$@L@body:
	setp.ge.u64 	%p4, %rd29, %rd28;
	@%p4 bra 	$@L@tail0;
	st.global.v4.u32 	[%rd29], {@w@, @w@, @w@, @w@};
	add.s64 	%rd29, %rd29, %rd12;
	bra.uni 	$@L@body;
$@L@tail0:
	add.s64 	%rd29, %rd28, %rd9;
$@L@tail:
	setp.ge.u64 	%p5, %rd29, %rd26;
	@%p5 bra 	$@done@;
	st.global.u8 	[%rd29], @b@;
	add.s64 	%rd29, %rd29, %rd10;
	bra.uni 	$@L@tail;
`
