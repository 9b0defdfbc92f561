package console

import (
	"strconv"

	"github.com/aortahealth/aorta/pkg/hl7"
)

// segmentRow is one line of a message's segment table: a field, or one
// component (or subcomponent, or repetition) of it, with its value decoded
// by pkg/hl7 (escape sequences such as \F\ and \T\ turned back into the
// characters they stand for, the message's character set into UTF-8).
type segmentRow struct {
	Segment  string // segment name, on the first row of each segment only
	Index    int    // the segment's position in the message, from 1
	Location string // PID-5.1, OBX-5[2], MSH-9 ...
	Name     string // the field's name where known
	Value    string
}

// segmentTable lays a raw message out as rows; a message that does not
// parse gives no rows and the parser's error (positions and codes, never
// values).
func segmentTable(raw []byte) ([]segmentRow, string) {
	m, err := hl7.Parse(raw)
	if err != nil {
		return nil, err.Error()
	}
	var rows []segmentRow
	i := 0
	for s := range m.Segments() {
		i++
		name := s.Name()
		first := len(rows)
		for n := 1; n <= s.NumFields(); n++ {
			f := s.Field(n)
			if f.IsEmpty() {
				continue
			}
			loc := name + "-" + strconv.Itoa(n)
			label := fieldName(name, n)
			// MSH-1 and MSH-2 are the delimiters themselves: never split.
			if name == "MSH" && n <= 2 {
				rows = append(rows, segmentRow{Index: i, Location: loc, Name: label, Value: f.String()})
				continue
			}
			reps := f.Repetitions()
			for ri, rep := range reps {
				rloc := loc
				if len(reps) > 1 {
					rloc += "[" + strconv.Itoa(ri+1) + "]"
				}
				rows = append(rows, elementRows(rep, rloc, label, i)...)
			}
		}
		if len(rows) == first { // a segment with no fields still shows
			rows = append(rows, segmentRow{Index: i, Location: name})
		}
		rows[first].Segment = name
	}
	return rows, ""
}

// elementRows is one row for a simple value, else a row per non-empty
// component (and per subcomponent of a composite component), so that
// every value shown is decoded.
func elementRows(e hl7.Element, loc, label string, index int) []segmentRow {
	comps := e.Components()
	if len(comps) <= 1 && len(e.Subcomponents()) <= 1 {
		return []segmentRow{{Index: index, Location: loc, Name: label, Value: e.String()}}
	}
	var rows []segmentRow
	for ci, c := range comps {
		if c.IsEmpty() {
			continue
		}
		cloc := loc + "." + strconv.Itoa(ci+1)
		subs := c.Subcomponents()
		if len(subs) <= 1 {
			rows = append(rows, segmentRow{Index: index, Location: cloc, Name: label, Value: c.String()})
			continue
		}
		for si, sc := range subs {
			if !sc.IsEmpty() {
				rows = append(rows, segmentRow{Index: index, Location: cloc + "." + strconv.Itoa(si+1), Name: label, Value: sc.String()})
			}
		}
	}
	return rows
}

// fieldName is the HL7 v2.5 name of a field of the segments interfaces
// most often carry; "" where this table does not know it.
func fieldName(segment string, n int) string {
	names := fieldNames[segment]
	if n < 1 || n > len(names) {
		return ""
	}
	return names[n-1]
}

// fieldNames lists, per segment, its fields' names from field 1 on
// (HL7 v2.5.1, chapter by chapter). Only the segments Aorta's feeds carry
// are here; others show without names.
var fieldNames = map[string][]string{
	"MSH": {"Field Separator", "Encoding Characters", "Sending Application", "Sending Facility", "Receiving Application",
		"Receiving Facility", "Date/Time Of Message", "Security", "Message Type", "Message Control ID", "Processing ID",
		"Version ID", "Sequence Number", "Continuation Pointer", "Accept Acknowledgment Type", "Application Acknowledgment Type",
		"Country Code", "Character Set", "Principal Language Of Message", "Alternate Character Set Handling Scheme",
		"Message Profile Identifier"},
	"MSA": {"Acknowledgment Code", "Message Control ID", "Text Message", "Expected Sequence Number", "Delayed Acknowledgment Type",
		"Error Condition"},
	"ERR": {"Error Code and Location", "Error Location", "HL7 Error Code", "Severity", "Application Error Code",
		"Application Error Parameter", "Diagnostic Information", "User Message", "Inform Person Indicator", "Override Type",
		"Override Reason Code", "Help Desk Contact Point"},
	"EVN": {"Event Type Code", "Recorded Date/Time", "Date/Time Planned Event", "Event Reason Code", "Operator ID",
		"Event Occurred", "Event Facility"},
	"PID": {"Set ID - PID", "Patient ID", "Patient Identifier List", "Alternate Patient ID - PID", "Patient Name",
		"Mother's Maiden Name", "Date/Time of Birth", "Administrative Sex", "Patient Alias", "Race", "Patient Address",
		"County Code", "Phone Number - Home", "Phone Number - Business", "Primary Language", "Marital Status", "Religion",
		"Patient Account Number", "SSN Number - Patient", "Driver's License Number - Patient", "Mother's Identifier",
		"Ethnic Group", "Birth Place", "Multiple Birth Indicator", "Birth Order", "Citizenship", "Veterans Military Status",
		"Nationality", "Patient Death Date and Time", "Patient Death Indicator", "Identity Unknown Indicator",
		"Identity Reliability Code", "Last Update Date/Time", "Last Update Facility", "Species Code", "Breed Code", "Strain",
		"Production Class Code", "Tribal Citizenship"},
	"PD1": {"Living Dependency", "Living Arrangement", "Patient Primary Facility", "Patient Primary Care Provider Name & ID No.",
		"Student Indicator", "Handicap", "Living Will Code", "Organ Donor Code", "Separate Bill", "Duplicate Patient",
		"Publicity Code", "Protection Indicator"},
	"MRG": {"Prior Patient Identifier List", "Prior Alternate Patient ID", "Prior Patient Account Number", "Prior Patient ID",
		"Prior Visit Number", "Prior Alternate Visit ID", "Prior Patient Name"},
	"NK1": {"Set ID - NK1", "Name", "Relationship", "Address", "Phone Number", "Business Phone Number", "Contact Role",
		"Start Date", "End Date", "Next of Kin / Associated Parties Job Title", "Next of Kin / Associated Parties Job Code/Class",
		"Next of Kin / Associated Parties Employee Number", "Organization Name - NK1", "Marital Status", "Administrative Sex",
		"Date/Time of Birth"},
	"PV1": {"Set ID - PV1", "Patient Class", "Assigned Patient Location", "Admission Type", "Preadmit Number",
		"Prior Patient Location", "Attending Doctor", "Referring Doctor", "Consulting Doctor", "Hospital Service",
		"Temporary Location", "Preadmit Test Indicator", "Re-admission Indicator", "Admit Source", "Ambulatory Status",
		"VIP Indicator", "Admitting Doctor", "Patient Type", "Visit Number", "Financial Class", "Charge Price Indicator",
		"Courtesy Code", "Credit Rating", "Contract Code", "Contract Effective Date", "Contract Amount", "Contract Period",
		"Interest Code", "Transfer to Bad Debt Code", "Transfer to Bad Debt Date", "Bad Debt Agency Code",
		"Bad Debt Transfer Amount", "Bad Debt Recovery Amount", "Delete Account Indicator", "Delete Account Date",
		"Discharge Disposition", "Discharged to Location", "Diet Type", "Servicing Facility", "Bed Status", "Account Status",
		"Pending Location", "Prior Temporary Location", "Admit Date/Time", "Discharge Date/Time", "Current Patient Balance",
		"Total Charges", "Total Adjustments", "Total Payments", "Alternate Visit ID", "Visit Indicator",
		"Other Healthcare Provider"},
	"PV2": {"Prior Pending Location", "Accommodation Code", "Admit Reason", "Transfer Reason", "Patient Valuables",
		"Patient Valuables Location", "Visit User Code", "Expected Admit Date/Time", "Expected Discharge Date/Time"},
	"ORC": {"Order Control", "Placer Order Number", "Filler Order Number", "Placer Group Number", "Order Status",
		"Response Flag", "Quantity/Timing", "Parent", "Date/Time of Transaction", "Entered By", "Verified By",
		"Ordering Provider", "Enterer's Location", "Call Back Phone Number", "Order Effective Date/Time",
		"Order Control Code Reason", "Entering Organization", "Entering Device", "Action By"},
	"OBR": {"Set ID - OBR", "Placer Order Number", "Filler Order Number", "Universal Service Identifier", "Priority - OBR",
		"Requested Date/Time", "Observation Date/Time", "Observation End Date/Time", "Collection Volume", "Collector Identifier",
		"Specimen Action Code", "Danger Code", "Relevant Clinical Information", "Specimen Received Date/Time", "Specimen Source",
		"Ordering Provider", "Order Callback Phone Number", "Placer Field 1", "Placer Field 2", "Filler Field 1",
		"Filler Field 2", "Results Rpt/Status Chng - Date/Time", "Charge to Practice", "Diagnostic Serv Sect ID",
		"Result Status", "Parent Result", "Quantity/Timing", "Result Copies To", "Parent", "Transportation Mode",
		"Reason for Study", "Principal Result Interpreter", "Assistant Result Interpreter", "Technician", "Transcriptionist",
		"Scheduled Date/Time"},
	"OBX": {"Set ID - OBX", "Value Type", "Observation Identifier", "Observation Sub-ID", "Observation Value", "Units",
		"References Range", "Abnormal Flags", "Probability", "Nature of Abnormal Test", "Observation Result Status",
		"Effective Date of Reference Range", "User Defined Access Checks", "Date/Time of the Observation", "Producer's ID",
		"Responsible Observer", "Observation Method", "Equipment Instance Identifier", "Date/Time of the Analysis"},
	"NTE": {"Set ID - NTE", "Source of Comment", "Comment", "Comment Type"},
	"AL1": {"Set ID - AL1", "Allergen Type Code", "Allergen Code/Mnemonic/Description", "Allergy Severity Code",
		"Allergy Reaction Code", "Identification Date"},
	"DG1": {"Set ID - DG1", "Diagnosis Coding Method", "Diagnosis Code - DG1", "Diagnosis Description", "Diagnosis Date/Time",
		"Diagnosis Type"},
	"SPM": {"Set ID - SPM", "Specimen ID", "Specimen Parent IDs", "Specimen Type", "Specimen Type Modifier",
		"Specimen Additives", "Specimen Collection Method", "Specimen Source Site"},
}
