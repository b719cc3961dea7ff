package sqlite

import "github.com/doorledger/doorledger/internal/seal"

// SealKeySize is the size of the key that seals secrets the database must
// keep but must not hold in the clear (internal/seal): vendor integrations'
// HMAC keys, webhook and authenticator-app secrets, and the bodies of mail
// not yet sent.
const SealKeySize = seal.KeySize
