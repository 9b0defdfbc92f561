package hl7

import (
	"strings"
	"testing"
	"time"
)

func TestBuildBatchACK(t *testing.T) {
	t.Parallel()
	in := "FHS|^~\\&|LAB|HOSP|AORTA|CENTRAL|20260101||||F1\r" +
		"BHS|^~\\&|LAB|HOSP|AORTA|CENTRAL|20260101||||B1\r" +
		"MSH|^~\\&|LAB|HOSP|AORTA|CENTRAL|20260101||ADT^A04|M1|P|2.5\r" +
		"BTS|1\rFTS|1\r"
	ts := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		input    string
		acks     [][]byte
		wantSegs []string // segment names in order
		wantBTS  string
	}{
		{"file with one ACK", in, [][]byte{[]byte("MSH|^~\\&|AORTA|CENTRAL|LAB|HOSP|x||ACK^A04^ACK|A1|P|2.5\rMSA|AA|M1\r")},
			[]string{"FHS", "BHS", "MSH", "MSA", "BTS", "FTS"}, "1"},
		{"file with no ACKs", in, nil, []string{"FHS", "BHS", "BTS", "FTS"}, "0"},
		{"batch without file header", strings.SplitN(in, "\r", 2)[1], nil, []string{"BHS", "BTS"}, "0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b, err := SplitBatch([]byte(tt.input))
			if err != nil {
				t.Fatal(err)
			}
			out := BuildBatchACK(b, tt.acks, BatchACK{ControlID: "ACKB1", Time: ts})
			var names []string
			for _, s := range strings.Split(strings.TrimSuffix(string(out), "\r"), "\r") {
				names = append(names, s[:3])
			}
			if strings.Join(names, ",") != strings.Join(tt.wantSegs, ",") {
				t.Fatalf("segments %v, want %v\n%q", names, tt.wantSegs, out)
			}
			back, err := SplitBatch(out)
			if err != nil {
				t.Fatalf("our batch ACK does not split: %v", err)
			}
			if len(back.Messages) != len(tt.acks) {
				t.Errorf("batch ACK holds %d messages, want %d", len(back.Messages), len(tt.acks))
			}
			h := back.Sections[0].Header
			if h.SendingApplication.String() != "AORTA" || h.ReceivingApplication.String() != "LAB" {
				t.Errorf("BHS-3/5 = %q/%q, want sender and receiver swapped (AORTA/LAB)", h.SendingApplication, h.ReceivingApplication)
			}
			if h.ControlID != "ACKB1" || h.ReferenceControlID != "B1" {
				t.Errorf("BHS-11/12 = %q/%q, want ACKB1/B1", h.ControlID, h.ReferenceControlID)
			}
			if back.FileHeader != nil && back.FileHeader.ReferenceControlID != "F1" {
				t.Errorf("FHS-12 = %q, want F1", back.FileHeader.ReferenceControlID)
			}
			if got := back.Sections[0].Trailer.Field(1).String(); got != tt.wantBTS {
				t.Errorf("BTS-1 = %q, want %q", got, tt.wantBTS)
			}
		})
	}
}
