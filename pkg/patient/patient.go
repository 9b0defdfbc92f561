// Package patient names patients the same way everywhere in Aorta: the
// listener partitions the outbox by it, the router keys per-patient state
// and events by it, and a merge (A40) computes the prior patient's key
// from MRG-1 with the same rules.
package patient

import (
	"hash/fnv"

	"github.com/aortahealth/aorta/pkg/hl7"
)

// Identifier is one patient identifier (HL7 data type CX).
type Identifier struct {
	ID        string // CX.1
	Authority string // CX.4 namespace ID, else its universal ID
	Type      string // CX.5 identifier type code, e.g. MR
}

// Key is the identifier qualified by its issuer, "authority/id": an MRN is
// only unique within the authority that assigned it. When the sender
// leaves the authority out, the sending facility stands in for it.
func (i Identifier) Key(fallbackAuthority string) string {
	a := i.Authority
	if a == "" {
		a = fallbackAuthority
	}
	return a + "/" + i.ID
}

// FromCX reads a CX field repetition.
func FromCX(e hl7.Element) Identifier {
	auth := e.Component(4)
	a := auth.Subcomponent(1).String()
	if a == "" {
		a = auth.Subcomponent(2).String()
	}
	return Identifier{ID: e.Component(1).String(), Authority: a, Type: e.Component(5).String()}
}

// Identifiers returns every repetition of a CX field that carries an ID,
// in order. HL7's explicit null ("") is no identifier: taken literally it
// would make one phantom patient of everyone sent that way.
func Identifiers(f hl7.Element) []Identifier {
	var ids []Identifier
	for _, rep := range f.Repetitions() {
		if id := FromCX(rep); id.ID != "" && id.ID != `""` {
			ids = append(ids, id)
		}
	}
	return ids
}

// Primary returns the message's primary patient identifier: the first
// non-empty repetition of PID-3 of the first PID segment. ok is false when
// the message has no PID or no identifier.
func Primary(m *hl7.Message) (id Identifier, ok bool) {
	if m == nil {
		return Identifier{}, false
	}
	pid := m.Segment("PID", 1)
	if pid == nil {
		return Identifier{}, false
	}
	ids := Identifiers(pid.Field(3))
	if len(ids) == 0 {
		return Identifier{}, false
	}
	return ids[0], true
}

// Partition hashes a patient key to the non-negative 31-bit partition key
// stored in the outbox (FNV-1a). Routers own partitions as this value
// modulo their partition count, so one patient's messages stay in order.
// It is part of the outbox contract: never change it without migrating
// the outbox.
func Partition(key string) int32 {
	h := fnv.New32a()
	h.Write([]byte(key))
	return int32(h.Sum32() & 0x7fffffff)
}
