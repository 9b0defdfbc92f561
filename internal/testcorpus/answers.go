package testcorpus

// ourAnswers is what Aorta's listener answers for a corpus file where that
// differs from expected.csv, which assumes original acknowledgement mode.
// expected.csv is a judgement, not a law; these are ours, with the reason.
var ourAnswers = map[string]struct {
	code string // AA, CA, none (no ACK), or batch (a batch acknowledgement)
	why  string
	// always: the answer holds in original mode too, not only when
	// MSH-15/16 are honoured.
	always bool
}{
	"30_adt-a40-merge-fhirconv.hl7":          {"none", "MSH-15/16 NE/NE: enhanced mode asks for no acknowledgement", false},
	"31_adt-a40-two-merges-fhirconv.hl7":     {"none", "NE/NE", false},
	"53_orm-o01-v26-prs.hl7":                 {"none", "NE/NE", false},
	"54_orm-o01-v27-prs.hl7":                 {"none", "NE/NE", false},
	"56_oru-r01-8859-with-fffd-prs.hl7":      {"none", "NE/NE", false},
	"66_variant-lf-adt-a40-fhirconv.hl7":     {"none", "NE/NE, and LF terminators are accepted", false},
	"33_oru-r01-nist-lri-cbc-fhirconv.hl7":   {"CA", "AL/NE: a commit acknowledgement", false},
	"52_oru-r01-v23-nte-br-prs.hl7":          {"CA", "AL/NE: a commit acknowledgement", false},
	"34_adt-a04-utf8-bom-fhirconv.hl7":       {"AA", "a leading UTF-8 byte-order mark is tolerated (raw keeps it)", true},
	"18_batch-fhs-one-msg-pythonhl7.hl7":     {"batch", "one batch acknowledgement; members are NE/NE so it holds no ACK in enhanced mode", true},
	"19_batch-two-bhs-dup-ids-pythonhl7.hl7": {"batch", "one batch acknowledgement; members are NE/NE so it holds no ACK in enhanced mode", true},
	"51_batch-elr-two-oru-prs.hl7":           {"batch", "one batch acknowledgement; members are NE/NE so it holds no ACK in enhanced mode", true},
	"20_batch-missing-msh-pythonhl7.hl7":     {"batch", "the member without MSH is rejected inside the batch acknowledgement", true},
}

// Want is the answer the listener gives for c: "AA", "AE", "AR", "CA",
// "none" or "batch", and why. honourEnhanced is false when the listener
// runs with --ack-mode=original.
func (c Case) Want(honourEnhanced bool) (code, why string) {
	if a, ok := ourAnswers[c.File]; ok && (honourEnhanced || a.always) {
		return a.code, a.why
	}
	return c.ExpectedACK, c.Notes
}
