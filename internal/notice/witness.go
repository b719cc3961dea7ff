package notice

import (
	"fmt"

	"github.com/doorledger/doorledger"
)

// WitnessRefusedAlert is the alert every admin receives when the witness
// named name refuses the audit log's checkpoint: its subject and body, marked
// SECURITY when the refusal is a security event.
func WitnessRefusedAlert(name string, r *doorledger.WitnessRefusal) (subject, body string) {
	subject = fmt.Sprintf("Witness %s refused the audit log's checkpoint of %d entries", name, r.Size)
	body = fmt.Sprintf("The witness %s refused the audit log's checkpoint of %d entries: %s.\n", name, r.Size, r.Reason)
	if r.Security {
		subject = "SECURITY: " + subject
		body += "\nThis is a security event. The witness did not accept that this checkpoint extends the log it cosigned before, " +
			"or did not accept the log's signature: the log it was shown may have been rewritten (a fork). " +
			"Verify the audit log now (Admin > Audit log > Verify now) and compare the heads your boards hold.\n"
	}
	return subject, body
}
