// Package twofactor is the arithmetic of second factors every storage
// backend shares: authenticator-app (TOTP, RFC 6238) secrets and codes with
// github.com/pquerna/otp, and one-time recovery codes and their hashes.
// Storage keeps the secrets sealed and the codes hashed; this package holds
// no state.
package twofactor

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/hex"
	"net/url"
	"strconv"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// TOTP parameters: what every authenticator app understands (SHA-1, six
// digits, 30-second steps), and one step either side of now accepted for a
// phone's clock a little off.
const (
	period = 30
	skew   = 1
)

// NewTOTP makes a new secret (160 random bits, as RFC 4226 recommends) for
// account (the user's email), with its otpauth:// URL for the QR code.
func NewTOTP(account string) *doorledger.TOTPSetup {
	b := make([]byte, 20)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return SetupOf(account, base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
}

// SetupOf is the setup of a secret: the secret and its otpauth:// URL.
func SetupOf(account, secret string) *doorledger.TOTPSetup {
	v := url.Values{}
	v.Set("secret", secret)
	v.Set("issuer", doorledger.SecondFactorIssuer)
	v.Set("algorithm", "SHA1")
	v.Set("digits", "6")
	v.Set("period", strconv.Itoa(period))
	u := url.URL{Scheme: "otpauth", Host: "totp", Path: "/" + doorledger.SecondFactorIssuer + ":" + account, RawQuery: v.Encode()}
	return &doorledger.TOTPSetup{Secret: secret, URL: u.String()}
}

// CheckTOTP reports whether code is the secret's code for a time step within
// skew of now and after lastStep (a code is good once: a step already used
// is refused), and which step it was.
func CheckTOTP(secret, code string, now time.Time, lastStep int64) (step int64, ok bool) {
	if !doorledger.IsTOTPCode(code) {
		return 0, false
	}
	opts := totp.ValidateOpts{Period: period, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}
	for d := int64(-skew); d <= skew; d++ {
		at := now.Add(time.Duration(d*period) * time.Second)
		want, err := totp.GenerateCodeCustom(secret, at, opts)
		if err != nil {
			return 0, false
		}
		s := at.Unix() / period
		if s > lastStep && subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			return s, true
		}
	}
	return 0, false
}

// CodeAt is the secret's code at t (tests act as the authenticator app).
func CodeAt(secret string, t time.Time) (string, error) {
	return totp.GenerateCodeCustom(secret, t, totp.ValidateOpts{Period: period, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
}

// recoveryEncoding is base32 in lower case: no 0, 1, 8 or 9 to misread.
var recoveryEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewRecoveryCodes returns n recovery codes as shown ("abcd-efgh-ijkl-mnop":
// 80 random bits each, so a plain SHA-256 of one cannot be searched back) and
// the hashes to store.
func NewRecoveryCodes(n int) (codes, hashes []string) {
	for range n {
		b := make([]byte, 10)
		if _, err := rand.Read(b); err != nil {
			panic(err) // crypto/rand never fails on supported platforms
		}
		s := recoveryEncoding.EncodeToString(b) // 16 characters
		codes = append(codes, s[0:4]+"-"+s[4:8]+"-"+s[8:12]+"-"+s[12:16])
		hashes = append(hashes, HashRecoveryCode(s))
	}
	return codes, hashes
}

// HashRecoveryCode is how a recovery code is stored and looked up: the
// SHA-256 of its normalized form under a fixed label.
func HashRecoveryCode(code string) string {
	sum := sha256.Sum256([]byte("doorledger recovery code v1\x00" + doorledger.NormalizeCode(code)))
	return hex.EncodeToString(sum[:])
}
