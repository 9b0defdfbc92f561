package hl7_test

import (
	"fmt"
	"time"

	"github.com/aortahealth/aorta/pkg/hl7"
)

func ExampleParse() {
	raw := []byte("MSH|^~\\&|LAB|HOSP|AORTA|AORTA|20240301120000||ORU^R01^ORU_R01|MSG-1|P|2.5.1\r" +
		"PID|1||MRN1^^^HOSP^MR||Doe^Jane\r" +
		"OBR|1|ORD1||GLU^Glucose\r" +
		"OBX|1|NM|GLU^Glucose||5.4|mmol/L\r" +
		"NTE|1||fasting \\T\\ rested\r")
	m, err := hl7.Parse(raw)
	if err != nil {
		fmt.Println(err)
		return
	}
	h := m.Header()
	fmt.Println(h.MessageType, h.TriggerEvent, h.ControlID, h.Version)
	for g := range m.Groups("OBR", "OBX", "NTE") {
		fmt.Println("order", g.Parent.Field(4).Component(2))
		for _, c := range g.Children {
			fmt.Println(" ", c.Name(), c.Field(5), c.Field(3))
		}
	}
	// Output:
	// ORU R01 MSG-1 2.5.1
	// order Glucose
	//   OBX 5.4 GLU^Glucose
	//   NTE  fasting & rested
}

func ExampleMessage_Get() {
	m, _ := hl7.Parse([]byte("MSH|^~\\&|A|B|C|D|20240301||ADT^A08|1|P|2.5\r" +
		"PID|1||MRN1^^^HOSP^MR~NHS9^^^NHS^NH||Doe^Jane||19800215|F\r"))
	for _, loc := range []string{"PID-5.1", "PID-5", "PID-3[2].1", "PID-3.4", "MSH-9.2", "PID-30"} {
		v, _ := m.Get(loc)
		fmt.Printf("%s = %q\n", loc, v)
	}
	_, err := m.Get("pid5")
	fmt.Println(err)
	// Output:
	// PID-5.1 = "Doe"
	// PID-5 = "Doe^Jane"
	// PID-3[2].1 = "NHS9"
	// PID-3.4 = "HOSP"
	// MSH-9.2 = "A08"
	// PID-30 = ""
	// hl7: location "pid5": segment name must be three upper-case letters or digits
}

func ExampleBuildACK() {
	h, _ := hl7.ParseHeader([]byte("MSH|^~\\&|LAB|HOSP|AORTA|AORTA|20240301||ORU^R01^ORU_R01|MSG-1|P|2.5.1|||AL|NE\r"))
	code, send := hl7.AckFor(h, hl7.Accepted)
	fmt.Println(code, send)
	ack, _ := hl7.BuildACK(h, hl7.ACK{
		Code:      code,
		ControlID: "ACK-1",
		Time:      time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC),
	})
	fmt.Printf("%q\n", ack)

	// A message whose header cannot be read is rejected with an ERR.
	bad := []byte("MSH|^^\\&|LAB|HOSP|AORTA|AORTA|20240301||ADT^A01|MSG-2|P|2.3\r")
	_, err := hl7.Parse(bad)
	h, _ = hl7.ParseHeader(bad)
	perr := err.(*hl7.Error)
	ack, _ = hl7.BuildACK(h, hl7.ACK{
		Code:      hl7.AR,
		ControlID: "ACK-2",
		Time:      time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC),
		Errors:    []hl7.ErrorDetail{{Location: perr.Location, Code: perr.Code, Text: perr.Reason}},
	})
	fmt.Printf("%q\n", ack)
	// Output:
	// CA true
	// "MSH|^~\\&|AORTA|AORTA|LAB|HOSP|20240301120000+0000||ACK^R01^ACK|ACK-1|P|2.5.1|||NE|NE\rMSA|CA|MSG-1\r"
	// "MSH|^~\\&|AORTA|AORTA|LAB|HOSP|20240301120000+0000||ACK^A01|ACK-2|P|2.3\rMSA|AR|MSG-2\rERR|MSH^1^2^102&encoding characters must be distinct from each other and from the field separator&HL70357\r"
}

func ExampleSplitBatch() {
	raw := []byte("FHS|^~\\&|LAB|HOSP|||||||FILE-1\r" +
		"BHS|^~\\&|LAB|HOSP|||||||BATCH-1\r" +
		"MSH|^~\\&|LAB|HOSP|||20240301||ADT^A08|M1|P|2.5\rPID|1\r" +
		"MSH|^~\\&|LAB|HOSP|||20240301||ADT^A08|M2|P|2.5\rPID|2\r" +
		"BTS|2\rFTS|1\r")
	b, err := hl7.SplitBatch(raw)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("file", b.FileHeader.ControlID, "batch", b.Sections[0].Header.ControlID)
	for _, msg := range b.Messages {
		m, _ := hl7.Parse(msg.Raw)
		fmt.Println(msg.Offset, len(msg.Raw), m.Header().ControlID)
	}
	// Output:
	// file FILE-1 batch BATCH-1
	// 63 53 M1
	// 116 53 M2
}
