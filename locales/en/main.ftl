# latchkey — English

nav-label = Account
nav-language = Language
nav-settings = Settings
nav-sign-in = Sign in
nav-sign-up = Sign up
nav-sign-out = Sign out
signed-in-as = Signed in as { $email }

home-title = Welcome to latchkey
home-intro = Sign in once and let the apps you trust act for you.
home-welcome = Hello, { $name }! You are signed in.

field-email = Email
field-password = Password
field-name = Name
field-given-name = Given name
field-family-name = Family name
field-display-name = Display name
field-slack-id = Slack ID
field-github-username = GitHub username
field-timezone = Timezone
field-current-password = Current password
field-new-password = New password
password-hint = At least 8 characters.

login-title = Sign in
login-submit = Sign in
login-failed = Incorrect email or password.
login-no-account = No account yet?

signup-title = Create your account
signup-submit = Create account
signup-have-account = Already have an account?

setup-title = Create the first administrator
setup-intro = This one-time link creates the administrator account of this latchkey server.
setup-submit = Create administrator
setup-invalid = This setup link is invalid, expired or already used.

settings-title = Settings
settings-profile = Profile
settings-save-profile = Save profile
settings-password = Password
settings-change-password = Change password
settings-profile-saved = Your profile was saved.
settings-password-changed = Your password was changed. Other sessions were signed out.

error-email-invalid = Enter a valid email address.
error-email-taken = An account with this email already exists.
error-password-short = Use at least 8 characters.
error-password-long = This password is too long.
error-password-wrong = The current password is not correct.
error-too-long = This is too long.
error-invalid-characters = This contains characters that are not allowed.
error-timezone-invalid = Use a timezone name such as UTC or Europe/Berlin.

error-code = Error
error-retry = Try again
error-home = Go to the home page
error-400-title = Bad request
error-400 = The request could not be understood. Check the address or the form and try again.
error-403-title = Not allowed
error-403 = You are not allowed to do this.
error-404-title = Not found
error-404 = There is nothing at this address.
error-405-title = Method not allowed
error-405 = This address does not accept this kind of request.
error-413-title = Too large
error-413 = The request is too large.
error-415-title = Unsupported format
error-415 = The request was sent in a format this page does not accept.
error-429-title = Too many attempts
error-429 = Too many attempts. Wait a little and try again.
error-500-title = Something went wrong
error-500 = Something went wrong on our side. Please try again later.
error-csrf-title = This form has expired
error-csrf = This form has expired or was sent from another site. Reload the page and try again.
error-registration-closed-title = Sign-up is closed
error-registration-closed = This server does not accept new accounts. Ask its administrator for one.
