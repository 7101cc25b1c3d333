package meterproto

import (
	"slices"
	"testing"
)

func TestProtocolExecutionType(t *testing.T) {
	t.Parallel()
	want := map[string]string{ProtocolIEC6205621: ExecGenericIEC6205621, ProtocolLIS200: ExecGenericLIS200}
	for _, p := range Protocols {
		got, ok := ProtocolExecutionType(p)
		if w, has := want[p]; ok != has || got != w {
			t.Errorf("ProtocolExecutionType(%q) = %q, %t; want %q, %t", p, got, ok, w, has)
		}
		if ok && !slices.Contains(ExecutionTypes, got) {
			t.Errorf("ProtocolExecutionType(%q) = %q, not one of ExecutionTypes", p, got)
		}
	}
	if got, ok := ProtocolExecutionType("carrier-pigeon"); ok || got != "" {
		t.Errorf("an unknown protocol got %q, %t", got, ok)
	}
}
