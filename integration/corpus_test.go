package integration

import (
	"fmt"
	"strings"
	"testing"

	"github.com/aortahealth/aorta/internal/pgtest"
	"github.com/aortahealth/aorta/internal/testcorpus"
	"github.com/aortahealth/aorta/pkg/hl7"
)

// TestCorpusOverTCP sends every third-party sample through the real
// binary, in both acknowledgement modes, and checks the answer kind (AA,
// CA, AR, none, or a batch acknowledgement), MSA-2, and that the exact
// bytes were stored. Where no answer is due, the next message on the same
// connection must get the next frame, proving none was sent.
//
// All files of one mode share a database. Several samples share control
// IDs, but none are byte-identical (nor is any batch member identical to
// another sample), so sharing only sets control_id_reused; a duplicate,
// which would change the answer, needs identical bytes.
func TestCorpusOverTCP(t *testing.T) {
	t.Parallel()
	cases := testcorpus.Cases(t)
	for _, mode := range []string{"auto", "original"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			dbURL := pgtest.NewDatabase(t)
			db := openDB(t, dbURL)
			l := startListener(t, dbURL, "--ack-mode", mode)
			for i, c := range cases {
				t.Run(c.File, func(t *testing.T) {
					raw := testcorpus.Read(t, c.File)
					want, why := c.Want(mode == "auto")
					conn := dialRaw(t, l.MLLPAddr)
					conn.writeFrame(raw)
					switch want {
					case "none":
						// Stored even though unanswered; then the
						// connection carries on, and the first frame
						// back answers the next message.
						waitForRaw(t, db, raw)
						probeID := fmt.Sprintf("PROBE-%d", i)
						conn.writeFrame(testMessageWithID(probeID, 0, 1))
						if code, msa2 := msaOf(conn.readFrame()); code != "AA" || msa2 != probeID {
							t.Errorf("first answer after an unanswered message: MSA %s/%s, want the next message's AA/%s (%s)", code, msa2, probeID, why)
						}
					case "batch":
						checkCorpusBatchAck(t, c, raw, conn.readFrame(), mode)
						var n int
						queryRow(t, db, `SELECT count(*) FROM batches WHERE raw = $1`, []any{raw}, &n)
						if n != 1 {
							t.Errorf("%d batches rows hold the bytes sent, want 1", n)
						}
					default:
						ack := conn.readFrame()
						code, msa2 := msaOf(ack)
						if code != want {
							t.Errorf("MSA-1 = %s, want %s (%s)\nACK %q", code, want, why, ack)
						}
						if msa2 != c.ControlID {
							t.Errorf("MSA-2 = %q, want %q", msa2, c.ControlID)
						}
						row := waitForRaw(t, db, raw)
						if row.AckCode != code {
							t.Errorf("stored ack_code %q, want the %s sent", row.AckCode, code)
						}
					}
				})
			}
		})
	}
}

// checkCorpusBatchAck checks a batch acknowledgement: one ACK per member
// when the members asked for one (or the mode is original, or they are
// rejected), none otherwise.
func checkCorpusBatchAck(t *testing.T, c testcorpus.Case, raw, resp []byte, mode string) {
	t.Helper()
	b, err := hl7.SplitBatch(resp)
	if err != nil {
		t.Fatalf("batch acknowledgement does not split: %v\n%q", err, resp)
	}
	if !hl7.IsBatch(resp) {
		t.Errorf("answer is not a batch: %q", resp)
	}
	wantIDs := strings.Split(c.ControlID, ";")
	acked := mode == "original" || c.ExpectedACK == "AR"
	if !acked {
		if len(b.Messages) != 0 {
			t.Errorf("batch acknowledgement holds %d ACKs, want none (the members asked for none)", len(b.Messages))
		}
		return
	}
	if len(b.Messages) != len(wantIDs) {
		t.Fatalf("batch acknowledgement holds %d ACKs, want %d:\n%q", len(b.Messages), len(wantIDs), resp)
	}
	for i, m := range b.Messages {
		if code, msa2 := msaOf(m.Raw); code != c.ExpectedACK || msa2 != wantIDs[i] {
			t.Errorf("member %d: MSA %s/%s, want %s/%s", i, code, msa2, c.ExpectedACK, wantIDs[i])
		}
	}
}
