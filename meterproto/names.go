package meterproto

// The communication protocols of a meter device, as the REST contract (Utilitarian v1.3,
// meter_devices.protocol) spells them.
const (
	ProtocolDLMSCOSEM  = "dlms-cosem"
	ProtocolIEC6205621 = "iec62056-21"
	ProtocolIFlag      = "i-flag"
	ProtocolMBus       = "mbus"
	ProtocolModbus     = "modbus"
	ProtocolLIS200     = "lis-200"
)

// Protocols is the contract's enum of communication protocols, in its order (the API
// validates meter devices against it). Callers must not modify it.
var Protocols = []string{ProtocolDLMSCOSEM, ProtocolIEC6205621, ProtocolIFlag, ProtocolMBus, ProtocolModbus, ProtocolLIS200}

// The execution types of an AMR task (meter_execution_type): which collector reads the
// meter. amrd runs generic_iec6205621 itself; runs of the others wait for an external
// worker.
const (
	ExecGenericLIS200     = "generic_lis200"
	ExecGenericIEC6205621 = "generic_iec6205621"
	ExecGenericCorusMeter = "generic_corus_meter"
)

// ExecutionTypes is the contract's enum of execution types, in its order. Callers must
// not modify it.
var ExecutionTypes = []string{ExecGenericLIS200, ExecGenericIEC6205621, ExecGenericCorusMeter}

// ProtocolExecutionType is the execution type of a protocol that has exactly one generic
// collector (iec62056-21 and lis-200): what a run invoked without an execution type gets
// from its meter device. ok is false for the other protocols.
func ProtocolExecutionType(protocol string) (execType string, ok bool) {
	switch protocol {
	case ProtocolIEC6205621:
		return ExecGenericIEC6205621, true
	case ProtocolLIS200:
		return ExecGenericLIS200, true
	}
	return "", false
}
