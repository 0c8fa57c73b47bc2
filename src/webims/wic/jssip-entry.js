// Entry of the JsSIP bundle: re-exports the library as an ES module default.
import JsSIP from "jssip";

export default JsSIP;
