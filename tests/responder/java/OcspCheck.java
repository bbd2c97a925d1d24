// Java 17 PKIX path validation with OCSP, the way a Java TLS client checks revocation.
//
// Usage: java OcspCheck ROOT_PEM ISSUER_PEM LEAF_PEM RESPONDER_URL|aia NONCE_BYTES [PADDING_BYTES]
//   RESPONDER_URL  the responder, or "aia" to use the leaf's AIA OCSP URL
//   NONCE_BYTES    0 = no nonce; n = an RFC 9654 nonce of n random octets.
//   PADDING_BYTES  0 (default) = nothing else; n = a non-critical private extension of n
//                  octets, which a responder must ignore (RFC 6960 §4.4).
//                  Java sends GET when the encoded request fits 255 characters and POST
//                  otherwise, so a long nonce or padding is how a test gets a Java POST.
// Prints exactly one line "STATUS good|revoked|unknown [reason]" and exits 0, or
// "ERROR <message>" and exits 2 when validation failed for any other reason.
import java.io.ByteArrayOutputStream;
import java.io.FileInputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.net.URI;
import java.security.SecureRandom;
import java.security.Security;
import java.security.cert.CertPath;
import java.security.cert.CertPathValidator;
import java.security.cert.CertPathValidatorException;
import java.security.cert.CertificateFactory;
import java.security.cert.CertificateRevokedException;
import java.security.cert.Extension;
import java.security.cert.PKIXParameters;
import java.security.cert.PKIXRevocationChecker;
import java.security.cert.TrustAnchor;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;
import java.util.Set;

public class OcspCheck {
    // id-pkix-ocsp-nonce 1.3.6.1.5.5.7.48.1.2, DER-encoded OBJECT IDENTIFIER
    private static final byte[] NONCE_OID_DER = {0x06, 0x09, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x02};
    // 1.3.6.1.4.1.32473.1: under the enterprise number RFC 5612 reserves for documentation
    private static final byte[] PADDING_OID_DER = {0x06, 0x09, 0x2b, 0x06, 0x01, 0x04, 0x01, (byte) 0x81, (byte) 0xfd,
                                                   0x59, 0x01};

    static byte[] der(int tag, byte[] content) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.write(tag);
        int n = content.length;
        if (n < 0x80) {
            out.write(n);
        } else if (n < 0x100) {
            out.write(0x81);
            out.write(n);
        } else {
            out.write(0x82);
            out.write(n >> 8);
            out.write(n & 0xff);
        }
        out.writeBytes(content);
        return out.toByteArray();
    }

    /** A non-critical request extension whose value is an OCTET STRING of random octets:
     *  the nonce, or padding. */
    static final class RandomExtension implements Extension {
        private final String oid;
        private final byte[] oidDer;
        private final byte[] value;

        RandomExtension(String oid, byte[] oidDer, int length) {
            this.oid = oid;
            this.oidDer = oidDer;
            byte[] octets = new byte[length];
            new SecureRandom().nextBytes(octets);
            value = der(0x04, octets);
        }

        public String getId() { return oid; }
        public boolean isCritical() { return false; }
        public byte[] getValue() { return value.clone(); }

        public void encode(OutputStream out) throws IOException {
            ByteArrayOutputStream body = new ByteArrayOutputStream();
            body.writeBytes(oidDer);
            body.writeBytes(der(0x04, value));
            out.write(der(0x30, body.toByteArray()));
        }
    }

    static X509Certificate load(CertificateFactory factory, String path) throws Exception {
        try (FileInputStream in = new FileInputStream(path)) {
            return (X509Certificate) factory.generateCertificate(in);
        }
    }

    public static void main(String[] args) throws Exception {
        Security.setProperty("ocsp.enable", "true");
        CertificateFactory factory = CertificateFactory.getInstance("X.509");
        X509Certificate root = load(factory, args[0]);
        X509Certificate issuer = load(factory, args[1]);
        X509Certificate leaf = load(factory, args[2]);
        int nonceLength = Integer.parseInt(args[4]);
        int paddingLength = args.length > 5 ? Integer.parseInt(args[5]) : 0;

        CertPathValidator validator = CertPathValidator.getInstance("PKIX");
        PKIXRevocationChecker checker = (PKIXRevocationChecker) validator.getRevocationChecker();
        // Only the leaf: the intermediate has no OCSP service (the root answers for it offline).
        checker.setOptions(EnumSet.of(PKIXRevocationChecker.Option.ONLY_END_ENTITY,
                                      PKIXRevocationChecker.Option.NO_FALLBACK));
        if (!args[3].equals("aia")) {
            checker.setOcspResponder(new URI(args[3]));
        }
        List<Extension> extensions = new ArrayList<>();
        if (nonceLength > 0) {
            extensions.add(new RandomExtension("1.3.6.1.5.5.7.48.1.2", NONCE_OID_DER, nonceLength));
        }
        if (paddingLength > 0) {
            extensions.add(new RandomExtension("1.3.6.1.4.1.32473.1", PADDING_OID_DER, paddingLength));
        }
        checker.setOcspExtensions(extensions);
        PKIXParameters params = new PKIXParameters(Set.of(new TrustAnchor(root, null)));
        params.setRevocationEnabled(false);  // the checker below is the only revocation check
        params.addCertPathChecker(checker);
        CertPath path = factory.generateCertPath(List.of(leaf, issuer));
        try {
            validator.validate(path, params);
            System.out.println("STATUS good");
        } catch (CertPathValidatorException e) {
            if (e.getReason() == CertPathValidatorException.BasicReason.REVOKED
                    && e.getCause() instanceof CertificateRevokedException) {
                CertificateRevokedException revoked = (CertificateRevokedException) e.getCause();
                System.out.println("STATUS revoked " + revoked.getRevocationReason());
            } else if (e.getReason() == CertPathValidatorException.BasicReason.UNDETERMINED_REVOCATION_STATUS
                    && String.valueOf(e.getMessage()).contains("revocation status is unknown")) {
                System.out.println("STATUS unknown");
            } else {
                System.out.println("ERROR " + e.getReason() + ": " + e.getMessage());
                for (Throwable t = e.getCause(); t != null; t = t.getCause()) {
                    System.out.println("  caused by " + t);
                }
                System.exit(2);
            }
        }
    }
}
