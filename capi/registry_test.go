package main

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kvhygiene/kvhygiene/core"
)

func TestRegistry(t *testing.T) {
	var r registry[string]
	a, err := r.add("a")
	require.NoError(t, err)
	b, err := r.add("b")
	require.NoError(t, err)
	assert.NotEqual(t, a, b)
	assert.Equal(t, tokenTag, a&^tokenIDMask, "token carries the tag")

	got, err := r.get(a)
	require.NoError(t, err)
	assert.Equal(t, "a", got)

	_, err = r.get(0)
	assert.Equal(t, stNullArg, core.StatusOf(err))
	_, err = r.get(0x1234)
	assert.Equal(t, stInvalidArg, core.StatusOf(err))
	_, err = r.get(tokenTag | 999)
	assert.Equal(t, stInvalidArg, core.StatusOf(err), "never issued")

	got, err = r.remove(a)
	require.NoError(t, err)
	assert.Equal(t, "a", got)
	_, err = r.get(a)
	assert.Equal(t, stClosed, core.StatusOf(err))
	_, err = r.remove(a)
	assert.Equal(t, stClosed, core.StatusOf(err))
	_, err = r.remove(0)
	assert.Equal(t, stNullArg, core.StatusOf(err))

	// numbers are never reused: a new tracer never answers to a closed token
	c, err := r.add("c")
	require.NoError(t, err)
	assert.NotEqual(t, a, c)
	_, err = r.get(a)
	assert.Equal(t, stClosed, core.StatusOf(err))
	got, err = r.get(b)
	require.NoError(t, err)
	assert.Equal(t, "b", got)
}

func TestRegistryConcurrent(t *testing.T) {
	var r registry[int]
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				tok, err := r.add(g*1000 + i)
				if !assert.NoError(t, err) {
					return
				}
				v, err := r.get(tok)
				assert.NoError(t, err)
				assert.Equal(t, g*1000+i, v)
				_, err = r.remove(tok)
				assert.NoError(t, err)
				_, err = r.get(tok)
				assert.Equal(t, stClosed, core.StatusOf(err))
			}
		}(g)
	}
	wg.Wait()
}
